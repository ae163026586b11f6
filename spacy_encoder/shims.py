"""Thinc's PyTorch wrapper around our torch modules: the shims and the converters.

`torch_layer` builds thinc's wrapper (same forward, same node names, so saved
pipelines are interchangeable) with our shims, which change four things: prediction
(inference mode, eval mode set once), the optimizer step (in place, averages that
work), `initialize` (draws new weights once trained or loaded) and serialization
(weights only; TorchScript graphs saved with stable bytes). The converters pass padded
batch-first arrays (B, T, ...) and lengths (B,) to the module and (B, T, D) back.
"""
import contextlib
import io
import logging
import os
import warnings
from typing import Any, Callable, Iterator, Optional, Tuple

import torch
from thinc.api import ArgsKwargs, Model, PyTorchGradScaler, PyTorchShim, TorchScriptShim, torch2xp, xp2torch
from thinc.layers.pytorchwrapper import forward as pytorch_forward

from .nodes import wrapper_shim
from .threads import small_input_threads
from .weights import WeightsError, error_summary, load_weights_safely

logger = logging.getLogger("spacy_encoder")


def _one_thread_after_fork() -> None:
    # torch's OpenMP pool does not survive fork: a forked worker that runs a parallel
    # op hangs (nlp.pipe(n_process=2), spaCy#6662). One intra-op thread per worker
    # avoids the pool; the workers themselves are the parallelism.
    torch.set_num_threads(1)


os.register_at_fork(after_in_child=_one_thread_after_fork)


@contextlib.contextmanager
def quiet_jit() -> Iterator[None]:
    """Silence exactly torch 2.13's deprecation warnings of torch.jit (it still works;
    eager stays the reference and tests pin scripted == eager)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
        yield


class _InferencePredict:
    """Prediction for thinc's torch shims, changed in two ways:

    - `torch.inference_mode()` instead of `no_grad()` (no version counters, less work),
      for eager modules only: a TorchScript module that has trained runs the
      differentiable graphs its executor recorded, which fail under inference mode
      ("Inference tensors cannot be saved for backward"), so it predicts under `no_grad()`;
    - the module is put in eval mode once and left there. Thinc's shim switches it to
      eval and back to train on every call, so concurrent `nlp()` calls from several
      threads could run with dropout on. `begin_update` puts it back in train mode;
    - a small input on CPU (at most `threads.small_input_tokens()` padded positions, 256
      by default) runs on one intra-op thread, the calling thread's setting restored
      afterwards (`threads.small_input_threads`: waking torch's threads for each op of a
      one-sentence forward costs more than the work). Training (`begin_update`) keeps
      its threads.
    """

    _model: Any
    _mixed_precision: bool
    _no_grad: Callable[[], Any] = torch.inference_mode

    def predict(self, inputs: ArgsKwargs) -> Any:
        if getattr(self._model, "training", False):  # a frozen module has no training flag
            self._model.eval()
        with self._no_grad(), torch.autocast("cuda", enabled=self._mixed_precision):
            with small_input_threads(cpu_positions(inputs)):
                return self._model(*inputs.args, **inputs.kwargs)


def cpu_positions(inputs: ArgsKwargs) -> int:
    """Padded positions (B * T) of a forward's first input (B, T, ...) on CPU; 0 for an
    input on another device (the intra-op threads are CPU threads)."""
    X = inputs.args[0] if inputs.args else None
    if not isinstance(X, torch.Tensor) or X.dim() < 2 or X.device.type != "cpu":
        return 0
    return int(X.shape[0]) * int(X.shape[1])


class _TrainingShim:
    """`finish_update` and `use_params` for thinc's torch shims.

    `finish_update`: the optimizer's result is written into the parameter instead of
    replacing its `.data`.

    Thinc's `PyTorchShim.finish_update` hands the optimizer a numpy (or cupy) view of
    each parameter (`tensor.numpy()`, which keeps the tensor alive), Adam updates that
    view in place, and thinc sets `.data` to a new tensor wrapping the view (dlpack,
    which keeps the view alive). Every step adds a link to a chain per parameter back
    to the first step: a few small allocations per parameter and step (about 75 tensors
    a step here) that live for the whole run. Scattered through glibc's heap, they pin
    the freed activations around them, so the heap keeps growing with training
    (`spacy train` RSS grew by GBs; the CNN tok2vec, with no torch shim, did not).
    """

    _model: Any
    _grad_scaler: PyTorchGradScaler

    def finish_update(self, optimizer: Any) -> None:
        for name, torch_data in self._model.named_parameters():
            if torch_data.grad is None:
                continue
            if not self._grad_scaler.found_inf:  # skipped when a gradient overflowed
                param, _ = optimizer((self.id, name), torch2xp(torch_data.data), torch2xp(torch_data.grad))  # type: ignore[attr-defined]
                updated = xp2torch(param, device=torch_data.device)
                if updated.data_ptr() != torch_data.data_ptr():
                    with torch.no_grad():
                        torch_data.copy_(updated)
            torch_data.grad.zero_()
        self._grad_scaler.update()

    @contextlib.contextmanager
    def use_params(self, params: Any) -> Any:
        """Swap in parameter averages for the `with` block (spaCy evaluates and saves
        under `nlp.use_params(optimizer.averages)` when `use_averages = true`).

        Thinc 8.3's optimizer keys the averages by `(shim.id, name)`, the key
        `finish_update` passes it, but thinc's `PyTorchShim.use_params` looks for
        `"pytorch_{id}_{name}"` strings and so never finds them: averaged training
        evaluated and saved the torch weights as they were. The averages are copied
        into the parameters in place (as `finish_update` does) and the weights put
        back afterwards, also when the block raises.
        """
        own = {
            key[1]: value
            for key, value in (params or {}).items()
            if isinstance(key, tuple) and len(key) == 2 and key[0] == self.id  # type: ignore[attr-defined]
        }
        named = dict(self._model.named_parameters())
        own = {name: value for name, value in own.items() if name in named}
        if not own:
            yield
            return
        backup = {name: named[name].detach().clone() for name in own}
        with torch.no_grad():
            for name, value in own.items():
                named[name].copy_(xp2torch(value, device=named[name].device).reshape(named[name].shape))
        try:
            yield
        finally:
            with torch.no_grad():
                for name, saved in backup.items():
                    named[name].copy_(saved)


class _Reinitialize:
    """`initialize` draws new torch weights once they were trained or loaded, as spaCy's
    own layers do (thinc's init functions draw their weights anew on every call; thinc's
    PyTorchWrapper has no init function, so `nlp.initialize()` a second time kept the
    trained encoder).

    Weights that nothing has changed since they were drawn (built, or drawn by an
    earlier `initialize`) are kept: they are as new as a re-draw, seeded runs reproduce
    as before, and components that initialize their tok2vec twice in one
    `nlp.initialize()` (spaCy's TextCatEnsemble.v2 does) draw once. After an update
    (`finish_update`) or a load (`from_bytes`, so also `from_disk` and `spacy.load`),
    `initialize` draws them from torch's global RNG as a new module built from the same
    config does (under the same seed, the same weights). A module with no config to
    build from (a `Scripted*` architecture, whose graph comes from a saved pipeline)
    keeps its weights, with a warning: train such a pipeline on with
    `nlp.resume_training()`.
    """

    _model: Any
    # Set by `torch_layer`: the weights are as drawn (no update or load since), and how
    # to build a new module (picklable, so that `pickle.dumps(nlp)` works).
    _fresh: bool = False
    _make_module: Optional[Callable[[], torch.nn.Module]] = None

    def reinitialize(self) -> None:
        if self._model is None or self._fresh:
            return
        if inference_only(self._model):
            logger.warning(
                "spacy-encoder: this encoder was optimized for inference (spacy-encoder deploy script "
                "--optimize) and has no trainable weights; initialize() keeps it as it is."
            )
            return
        if self._make_module is None:
            logger.warning(
                "spacy-encoder: this TorchScript encoder was loaded from a saved graph and has no "
                "config to draw new weights from; initialize() keeps its weights (use "
                "nlp.resume_training() to train it further)."
            )
            return
        new = self._make_module()
        # In place, by name: a loaded TorchScript module also lists the buffers that
        # the eager one keeps out of its state_dict (tables fixed by the config).
        own = self._model.state_dict()
        with torch.no_grad():
            for name, value in new.state_dict().items():
                own[name].copy_(value)
        for param in self._model.parameters():
            param.grad = None
        self._fresh = True

    def from_bytes(self, bytes_data: bytes) -> Any:
        loaded = super().from_bytes(bytes_data)  # type: ignore[misc]
        self._fresh = False
        return loaded

    def finish_update(self, optimizer: Any) -> None:
        self._fresh = False
        super().finish_update(optimizer)  # type: ignore[misc]


class EncoderShim(_Reinitialize, _TrainingShim, _InferencePredict, PyTorchShim):
    pass


def inference_only(module: Any) -> bool:
    """True for a module with no trainable weights: one frozen (and perhaps quantized)
    for inference by `spacy-encoder deploy script --optimize freeze|int8`."""
    return isinstance(module, torch.jit.ScriptModule) and next(iter(module.parameters()), None) is None


class ScriptedEncoderShim(_Reinitialize, _TrainingShim, _InferencePredict, TorchScriptShim):
    _no_grad = torch.no_grad

    def begin_update(self, inputs: ArgsKwargs) -> Any:
        if self._model is not None and inference_only(self._model):
            raise ValueError(
                "spacy-encoder: this encoder was optimized for inference (spacy-encoder deploy script "
                "--optimize freeze|int8: its weights are constants) and cannot be trained; train "
                "the eager pipeline it was made from, or freeze the component (frozen_components)."
            )
        return super().begin_update(inputs)

    def from_bytes(self, bytes_data: bytes) -> "ScriptedEncoderShim":
        """thinc's, with a one-line error where torch cannot read the saved graph (cut
        short or overwritten: torch's own error is about zip archives and streams)."""
        try:
            super().from_bytes(bytes_data)
        except RuntimeError as err:
            raise WeightsError(
                f"spacy-encoder: the TorchScript encoder could not be loaded ({error_summary(err)}). "
                "The file is corrupted or was not written by spacy-encoder."
            ) from None
        return self

    def to_bytes(self) -> bytes:
        """thinc's, written from a fresh load of the module, so that save -> load -> save
        gives the same bytes (see `as_loaded`)."""
        if self._model is None:
            return super().to_bytes()
        scripted = self._model
        self._model = as_loaded(scripted)
        try:
            return super().to_bytes()
        finally:
            self._model = scripted

    def __getstate__(self) -> dict:
        """Pickle the TorchScript module as `torch.jit.save` bytes: a ScriptModule has no
        `__getstate__` of its own, so `pickle.dumps(nlp)` (and spawn-based
        `nlp.pipe(n_process=...)`) failed for `torchscript = true` and scripted pipelines."""
        state = dict(self.__dict__)
        state["_model"] = None
        state["_scripted"] = self.to_bytes() if self._model is not None else None
        return state

    def __setstate__(self, state: dict) -> None:
        scripted = state.pop("_scripted", None)
        self.__dict__.update(state)
        if scripted is not None:
            self.from_bytes(scripted)
            self._fresh = state.get("_fresh", False)  # a copy, not a load


def as_loaded(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """A copy of `module` through `torch.jit.save` and `torch.jit.load`, in eval mode,
    that Python has not touched: it saves the same bytes as any other such copy.

    `torch.jit.save` of the module itself gives bytes that change after a save and load,
    with equal weights and code: a module fresh from `torch.jit.script` saves the source
    ranges of the Python files it was compiled from (the `.debug_pkl` records, and so the
    archive's serialization_id), a loaded one those of the archive's own code; and the
    pickled tensors are memoized by how many references each has, so that a
    `state_dict()` or `.to()` from Python changes them. The training flags are saved too;
    the shims set the mode on every call, so the copy is always saved in eval mode. It
    stays on the module's device (the archive records it).
    """
    param = next(iter(module.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    buffer = io.BytesIO()
    with quiet_jit():
        torch.jit.save(module, buffer)
        buffer.seek(0)
        loaded = torch.jit.load(buffer, map_location=device)
    return loaded.eval()


def torch_layer(
    module: Any,
    *,
    scripted: bool,
    mixed_precision: bool,
    grad_scaler: Optional[PyTorchGradScaler],
    make_module: Optional[Callable[[], torch.nn.Module]] = None,
    fresh: bool = False,
) -> Model:
    """Thinc's PyTorch wrapper (same forward, same node names, so saved pipelines are
    interchangeable) around `module`, with our converters and shims. `scripted`: the
    module is a ScriptModule, or None as a placeholder that `from_bytes` fills.
    `make_module` builds a new eager module of the same config (picklable), for
    `initialize` to draw new weights from (see `_Reinitialize`); `fresh`: `module` is
    as drawn, so the next `initialize` keeps it. An eager module's weights load
    through `weights.load_weights_safely`."""
    if scripted:
        shim: PyTorchShim = ScriptedEncoderShim(module, mixed_precision=mixed_precision, grad_scaler=grad_scaler)
    else:
        shim = EncoderShim(
            module, mixed_precision=mixed_precision, grad_scaler=grad_scaler, deserialize_model=load_weights_safely
        )
    shim._make_module = make_module  # type: ignore[attr-defined]
    shim._fresh = fresh and module is not None  # type: ignore[attr-defined]
    return Model(
        "pytorch_script" if scripted else "pytorch",
        pytorch_forward,
        init=_torch_layer_init,
        attrs={"convert_inputs": convert_inputs, "convert_outputs": convert_outputs},
        shims=[shim],
        dims={"nI": None, "nO": None},
    )


def _torch_layer_init(model: Model, X: Any = None, Y: Any = None) -> None:
    # The module's shapes come from the config: nothing to infer from X.
    wrapper_shim(model).reinitialize()


# --- The PyTorch wrapper's converters ------------------------------------------------


def convert_inputs(model: Model, inputs: Tuple[Any, ...], is_train: bool) -> Tuple[ArgsKwargs, Callable]:
    """(padded X (B, T, F|D), [static vectors (B, T, V),] lengths (B,)) to torch.
    Feature ids and static vectors need no gradient."""
    device = wrapper_shim(model).device
    X, *static, lengths = inputs
    needs_grad = is_train and X.dtype.kind == "f" and not static
    Xt = xp2torch(X, requires_grad=needs_grad, device=device)
    St = [xp2torch(S, device=device) for S in static]
    Lt = xp2torch(model.ops.xp.asarray(lengths, dtype="int64"), device=device)

    def backprop(dX: ArgsKwargs) -> Optional[Any]:
        if not needs_grad:
            return None
        return torch2xp(dX.args[0])  # (B, T, D)

    return ArgsKwargs(args=(Xt, *St, Lt), kwargs={}), backprop


def convert_outputs(model: Model, inputs_outputs: Tuple[Any, Any], is_train: bool) -> Tuple[Any, Callable]:
    """(B, T, D) torch output to the current ops' array; gradients back to torch."""
    _, Yt = inputs_outputs
    device = wrapper_shim(model).device
    # Under autocast the output may be half precision; spaCy's heads expect float32.
    if Yt.dtype != torch.float32:
        Yt = Yt.float()
    Y = torch2xp(Yt)

    def backprop(dY: Any) -> ArgsKwargs:
        return ArgsKwargs(args=(Yt,), kwargs={"grad_tensors": xp2torch(dY, device=device)})

    return Y, backprop

