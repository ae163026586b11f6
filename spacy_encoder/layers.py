"""Thinc glue: Docs to feature ids, windows and length buckets, the PyTorch wrapper's
converters, and stitching the windows back into one array per doc.

Data path of `transformer_tok2vec` (N docs, n_i tokens each, F features, D width):

    docs -> ids (sum n_i, F) uint64 -> windows of <= max_length tokens
         -> length-sorted buckets, each padded batch-first (B, T, F) + lengths (B,)
         -> torch module -> (B, T, D) per bucket -> per-token rows -> N x (n_i, D)

Docs longer than `max_length` are cut into windows that start every `window_stride`
tokens; each token takes its vector from the window in which it sits most centrally,
so every token keeps at least (max_length - window_stride) / 2 tokens of context on
both sides wherever the doc allows. Nothing is truncated.
"""
import contextlib
import io
import logging
import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple, cast

import numpy
import torch
from spacy.attrs import ORTH, intify_attr
from spacy.tokens import Doc
from thinc.api import ArgsKwargs, Model, PyTorchGradScaler, PyTorchShim, TorchScriptShim, torch2xp, xp2torch
from thinc.layers.pytorchwrapper import forward as pytorch_forward
from thinc.types import Floats2d

from .pytorch.windows import doc_windows

logger = logging.getLogger("spacy_encoder")


def _one_thread_after_fork() -> None:
    # torch's OpenMP pool does not survive fork: a forked worker that runs a parallel
    # op hangs (nlp.pipe(n_process=2), spaCy#6662). One intra-op thread per worker
    # avoids the pool; the workers themselves are the parallelism.
    torch.set_num_threads(1)


os.register_at_fork(after_in_child=_one_thread_after_fork)

# Buckets: a new padded batch is started when the current one would hold more than
# BUCKET_TOKENS positions, or when it holds more than MIN_BUCKET_TOKENS and more than
# MAX_PADDING of it would be padding. Every bucket is one forward call, whose fixed
# cost on CPU (about a hundred torch ops, each waking the OpenMP threads) is worth a
# few hundred tokens of compute; padding costs compute per position. Measured on
# CoNLL-03 test with nlp.pipe(batch_size=64) (RESULTS.md, issue 20), these give 1.3-1.8x
# the words/s of the earlier 4096 / 128 / 0.05 for 1- and 10-sentence docs. Outputs do
# not depend on the bucketing (padding invariance; tests pin it).
BUCKET_TOKENS = 8192
MIN_BUCKET_TOKENS = 2048
MAX_PADDING = 0.15


@dataclass
class WindowPlan:
    """Where each window comes from and where each token's vector comes from.

    starts/lengths: per window, the offset of its first token in the flat token array,
        and its length. Windows appear in bucket order (longest first).
    buckets: (first window, end window, padded length) per bucket.
    gather: for each token of the flat token array, its row in the concatenation of
        all buckets' outputs flattened to (sum B*T, D).
    source: for each padded position of all buckets, in the same flat order, the token
        it holds, or -1 for padding.
    """

    starts: numpy.ndarray
    lengths: numpy.ndarray
    buckets: List[Tuple[int, int, int]]
    gather: numpy.ndarray
    source: numpy.ndarray


def plan_windows(doc_lengths: Sequence[int], max_length: int, stride: int) -> WindowPlan:
    """Plan windows and length buckets for a batch of docs (see `WindowPlan`)."""
    offsets = numpy.concatenate([[0], numpy.cumsum(doc_lengths, dtype="int64")])
    windows = []  # (flat start, length, flat own start, flat own end)
    for offset, n in zip(offsets[:-1].tolist(), doc_lengths):
        for start, length, own_start, own_end in doc_windows(n, max_length, stride):
            windows.append((offset + start, length, offset + own_start, offset + own_end))
    # Longest first; stable, so equal lengths keep document order.
    windows.sort(key=lambda w: -w[1])
    buckets: List[Tuple[int, int, int]] = []
    first = 0
    real = 0
    for i, (_, length, _, _) in enumerate(windows):
        if i > first:
            padded = windows[first][1] * (i - first + 1)
            waste = padded - (real + length)
            if padded > BUCKET_TOKENS or (padded > MIN_BUCKET_TOKENS and waste > MAX_PADDING * padded):
                buckets.append((first, i, windows[first][1]))
                first, real = i, 0
        real += length
    if windows:
        buckets.append((first, len(windows), windows[first][1]))
    n_tokens = int(offsets[-1])
    gather = numpy.zeros((n_tokens,), dtype="int64")
    sources = []
    base = 0
    for first, end, width in buckets:
        for row, (start, length, own_start, own_end) in enumerate(windows[first:end]):
            row_base = base + row * width
            gather[own_start:own_end] = row_base + numpy.arange(own_start - start, own_end - start)
            row_source = numpy.full((width,), -1, dtype="int64")
            row_source[:length] = numpy.arange(start, start + length)
            sources.append(row_source)
        base += (end - first) * width
    source = numpy.concatenate(sources) if sources else numpy.zeros((0,), dtype="int64")
    return WindowPlan(
        starts=numpy.asarray([w[0] for w in windows], dtype="int64"),
        lengths=numpy.asarray([w[1] for w in windows], dtype="int64"),
        buckets=buckets,
        gather=gather,
        source=source,
    )


def run_windows(
    model: Model,
    torch_layer: Model,
    X: Any,
    doc_lengths: List[int],
    is_train: bool,
    *,
    pad_value: Any,
    static: Optional[Any] = None,
) -> Tuple[Floats2d, Callable[[Floats2d], Optional[Any]]]:
    """Run `torch_layer` over the windows and buckets of a flat token array.

    X: (sum n_i, ...) one row per token (feature ids or vectors).
    static: (sum n_i, V) static vectors per token, or None. Padded with zeros and
        passed to the torch layer after X; they get no gradient.
    Returns (sum n_i, D) and a backprop callback giving the gradient of X (or None
    when X holds ids).
    """
    ops = model.ops
    plan = plan_windows(doc_lengths, model.attrs["max_length"], model.attrs["window_stride"])
    width = model.get_dim("nO")
    n_tokens = X.shape[0]
    if n_tokens == 0:
        return ops.alloc2f(0, width), lambda dY: None
    # One fancy-index copy pads every bucket: (sum B*T, ...) then a view per bucket.
    pad_row = ops.xp.full((1,) + X.shape[1:], pad_value, dtype=X.dtype)
    X_padded = ops.xp.concatenate([X, pad_row])[ops.asarray(plan.source)]  # (sum B*T, ...)
    if static is not None:
        zero_row = ops.xp.zeros((1, static.shape[1]), dtype=static.dtype)
        S_padded = ops.xp.concatenate([static, zero_row])[ops.asarray(plan.source)]  # (sum B*T, V)
    outputs = []
    callbacks = []
    row = 0
    for first, end, seq_len in plan.buckets:
        n_rows = end - first
        Xb = X_padded[row : row + n_rows * seq_len].reshape((n_rows, seq_len) + X.shape[1:])  # (B, T, ...)
        lengths = plan.lengths[first:end]  # (B,)
        if static is None:
            inputs: Tuple[Any, ...] = (Xb, lengths)
        else:
            Sb = S_padded[row : row + n_rows * seq_len].reshape((n_rows, seq_len, static.shape[1]))  # (B, T, V)
            inputs = (Xb, Sb, lengths)
        Yb, backprop_b = torch_layer(inputs, is_train)  # (B, T, D)
        outputs.append(Yb.reshape((-1, width)))
        callbacks.append(backprop_b)
        row += n_rows * seq_len
    Y_padded = ops.xp.concatenate(outputs) if len(outputs) > 1 else outputs[0]  # (sum B*T, D)
    gather = ops.asarray(plan.gather)
    Y = Y_padded[gather]  # (sum n_i, D)

    def backprop(dY: Floats2d) -> Optional[Any]:
        dY_padded = ops.alloc2f(*Y_padded.shape)
        dY_padded[gather] = dY  # each token sits at exactly one padded position
        dX_parts = []
        start = 0
        for (first, end, seq_len), callback in zip(plan.buckets, callbacks):
            n_rows = end - first
            dYb = dY_padded[start : start + n_rows * seq_len].reshape((n_rows, seq_len, width))
            dX_parts.append(callback(dYb))
            start += n_rows * seq_len
        if dX_parts[0] is None:
            return None
        # Overlapping windows see a token more than once: sum its gradients.
        dX_padded = ops.xp.concatenate([d.reshape((-1,) + X.shape[1:]) for d in dX_parts])
        real = plan.source >= 0
        dX = ops.alloc((n_tokens,) + X.shape[1:], dtype=dX_padded.dtype)
        ops.scatter_add(dX, ops.asarray(plan.source[real]), dX_padded[ops.asarray(real)])
        return dX

    return Y, backprop


# --- The PyTorch wrapper ---------------------------------------------------------------


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
      threads could run with dropout on. `begin_update` puts it back in train mode.
    """

    _model: Any
    _mixed_precision: bool
    _no_grad: Callable[[], Any] = torch.inference_mode

    def predict(self, inputs: ArgsKwargs) -> Any:
        if getattr(self._model, "training", False):  # a frozen module has no training flag
            self._model.eval()
        with self._no_grad(), torch.autocast("cuda", enabled=self._mixed_precision):
            return self._model(*inputs.args, **inputs.kwargs)


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
                "spacy-encoder: this encoder was optimized for inference (spacy-encoder script "
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


class WeightsError(ValueError):
    """Saved encoder weights that cannot be loaded: damaged, or not written for this model."""


def error_summary(err: BaseException) -> str:
    """`Type: first sentence` of an error, for a one-line message (torch's errors on a
    damaged file go on with several sentences of advice, and some with a C++ trace)."""
    text = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {text.split('. ')[0][:200]}"


def inference_only(module: Any) -> bool:
    """True for a module with no trainable weights: one frozen (and perhaps quantized)
    for inference by `spacy-encoder script --optimize freeze|int8`."""
    return isinstance(module, torch.jit.ScriptModule) and next(iter(module.parameters()), None) is None


class ScriptedEncoderShim(_Reinitialize, _TrainingShim, _InferencePredict, TorchScriptShim):
    _no_grad = torch.no_grad

    def begin_update(self, inputs: ArgsKwargs) -> Any:
        if self._model is not None and inference_only(self._model):
            raise ValueError(
                "spacy-encoder: this encoder was optimized for inference (spacy-encoder script "
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
    deserialize_model: Optional[Callable] = None,
    make_module: Optional[Callable[[], torch.nn.Module]] = None,
    fresh: bool = False,
) -> Model:
    """Thinc's PyTorch wrapper (same forward, same node names, so saved pipelines are
    interchangeable) around `module`, with our converters and shims. `scripted`: the
    module is a ScriptModule, or None as a placeholder that `from_bytes` fills.
    `make_module` builds a new eager module of the same config (picklable), for
    `initialize` to draw new weights from (see `_Reinitialize`); `fresh`: `module` is
    as drawn, so the next `initialize` keeps it."""
    if scripted:
        shim: PyTorchShim = ScriptedEncoderShim(module, mixed_precision=mixed_precision, grad_scaler=grad_scaler)
    else:
        shim = EncoderShim(
            module, mixed_precision=mixed_precision, grad_scaler=grad_scaler, deserialize_model=deserialize_model
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
    model.shims[0].reinitialize()


# --- The PyTorch wrapper's converters ------------------------------------------------


def convert_inputs(model: Model, inputs: Tuple[Any, ...], is_train: bool) -> Tuple[ArgsKwargs, Callable]:
    """(padded X (B, T, F|D), [static vectors (B, T, V),] lengths (B,)) to torch.
    Feature ids and static vectors need no gradient."""
    device = model.shims[0].device
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
    device = model.shims[0].device
    # Under autocast the output may be half precision; spaCy's heads expect float32.
    if Yt.dtype != torch.float32:
        Yt = Yt.float()
    Y = torch2xp(Yt)

    def backprop(dY: Any) -> ArgsKwargs:
        return ArgsKwargs(args=(Yt,), kwargs={"grad_tensors": xp2torch(dY, device=device)})

    return Y, backprop


# --- Thinc layers --------------------------------------------------------------------


def transformer_tok2vec(
    torch_layer: Model,
    *,
    attrs: List[str],
    width: int,
    max_length: int,
    window_stride: int,
    vectors_width: int = 0,
    architecture: str = "spacy-encoder.TransformerTok2Vec.v1",
) -> Model[List[Doc], List[Floats2d]]:
    """Docs to one (n_tokens, width) array each, through `torch_layer` (a wrapped
    `Tok2VecEncoder`, or `VectorsTok2VecEncoder` when `vectors_width` > 0: then each
    token's row of `doc.vocab.vectors` is looked up and passed in beside its ids).
    `architecture` names the registered builder in error messages."""
    return Model(
        "spacy-encoder.tok2vec",
        _tok2vec_forward,
        init=_tok2vec_init,
        layers=[torch_layer],
        dims={"nO": width},
        attrs={
            "attr_ids": [intify_attr(a) for a in attrs],
            "attrs": list(attrs),
            "max_length": max_length,
            "window_stride": window_stride,
            "vectors_width": vectors_width,
            "architecture": architecture,
        },
    )


def _tok2vec_init(model: Model, X: Optional[List[Doc]] = None, Y: Any = None) -> None:
    # The module's shapes come from the config; the vectors come with the vocab,
    # loaded by [initialize] vectors before the components are initialized.
    if X and model.attrs.get("vectors_width"):
        problem = vectors_mismatch(X[0].vocab.vectors, model.attrs["vectors_width"])
        if problem:
            from confection import ConfigValidationError

            raise ConfigValidationError(
                title=f"Invalid settings for {model.attrs['architecture']}",
                errors=[{"loc": ["vectors_width"], "msg": problem}],
                show_config=False,
            )
    model.layers[0].initialize()


def vectors_mismatch(table: Any, vectors_width: int) -> Optional[str]:
    """Why the pipeline's vectors cannot feed an encoder built for `vectors_width`, or None."""
    n_rows, table_width = table.shape if table.shape else (0, 0)
    if n_rows == 0 or table_width == 0:
        return (
            f"vectors_width is {vectors_width}, but the pipeline's vocab has no vectors: set "
            "[initialize] vectors (e.g. --paths.vectors en_core_web_md, or a `spacy init vectors` "
            "folder), or use vectors_width = 0."
        )
    if table_width != vectors_width:
        return (
            f"vectors_width is {vectors_width}, but the pipeline's vectors have width {table_width}: "
            f"use the vectors the encoder was built for, or vectors_width = {table_width} (and retrain)."
        )
    return None


def static_vectors(model: Model, docs: Sequence[Doc]) -> Any:
    """Each token's static vector, looked up as spaCy's `StaticVectors` does (the
    vectors' own key attribute, ORTH by default; floret tables hash subwords): key to
    row, and zeros for a token with no row. :return: (sum n_i, V) float32."""
    width = model.attrs["vectors_width"]
    docs = [doc for doc in docs if len(doc)]
    if not docs:
        return model.ops.alloc2f(0, width)
    table = docs[0].vocab.vectors
    problem = vectors_mismatch(table, width)
    if problem:
        raise ValueError(f"{model.attrs['architecture']}: {problem}")
    key_attr = getattr(table, "attr", ORTH)
    keys = numpy.concatenate([doc.to_array(key_attr) for doc in docs]).astype("uint64")
    if table.mode == "floret":
        return model.ops.asarray2f(table.get_batch(keys), dtype="float32")
    rows = model.ops.asarray(table.find(keys=keys))
    V = model.ops.asarray2f(model.ops.asarray(table.data)[rows], dtype="float32")
    V[rows < 0] = 0.0
    return V


def _tok2vec_forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    torch_layer = model.layers[0]
    doc_lengths = [len(doc) for doc in docs]
    ids = extract_features(docs, model.attrs["attr_ids"])  # (sum n_i, F)
    ids = model.ops.asarray(ids)
    static = static_vectors(model, docs) if model.attrs.get("vectors_width") else None  # (sum n_i, V)
    Y, backprop_windows = run_windows(model, torch_layer, ids, doc_lengths, is_train, pad_value=0, static=static)
    Ys = model.ops.unflatten(Y, model.ops.asarray1i(doc_lengths)) if docs else []

    def backprop(dYs: List[Floats2d]) -> List[Doc]:
        if sum(doc_lengths):
            backprop_windows(model.ops.flatten(dYs))
        return []

    return Ys, backprop


def extract_features(docs: Sequence[Doc], attr_ids: List[int]) -> numpy.ndarray:
    """Token attribute ids (spaCy's 64-bit hashes) as int64: (sum n_i, F).

    The uint64 ids are reinterpreted, not converted, as int64: torch has no uint64
    arithmetic; the hashing in `HashEmbed` reads the two 32-bit halves.
    """
    arrays = [doc.to_array(attr_ids) for doc in docs if len(doc)]
    if not arrays:
        return numpy.zeros((0, len(attr_ids)), dtype="int64")
    ids = numpy.ascontiguousarray(numpy.concatenate(arrays).reshape((-1, len(attr_ids))), dtype="uint64")
    return ids.view("int64")


def transformer_encoder(
    torch_layer: Model, *, width: int, max_length: int, window_stride: int
) -> Model[List[Floats2d], List[Floats2d]]:
    """One (n_tokens, width) array per doc in and out, through `torch_layer` (a wrapped
    `TransformerEncoder`), for the `encode` slot of `spacy.Tok2Vec.v2`."""
    return Model(
        "spacy-encoder.encoder",
        _encoder_forward,
        init=_encoder_init,
        layers=[torch_layer],
        dims={"nI": width, "nO": width},
        attrs={"max_length": max_length, "window_stride": window_stride},
    )


def _encoder_init(model: Model, X: Any = None, Y: Any = None) -> None:
    model.layers[0].initialize()


def _encoder_forward(model: Model, Xs: List[Floats2d], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    doc_lengths = [len(X) for X in Xs]
    width = model.get_dim("nO")
    X = model.ops.flatten(Xs) if Xs else model.ops.alloc2f(0, width)
    if X.shape[1] != width:
        raise ValueError(f"spacy-encoder.TransformerEncoder: expected input width {width}, got {X.shape[1]}.")
    Y, backprop_windows = run_windows(model, model.layers[0], X, doc_lengths, is_train, pad_value=0.0)
    Ys = model.ops.unflatten(Y, model.ops.asarray1i(doc_lengths)) if Xs else []

    def backprop(dYs: List[Floats2d]) -> List[Floats2d]:
        if not sum(doc_lengths):
            return [model.ops.alloc2f(0, width) for _ in Xs]
        dX = cast(Floats2d, backprop_windows(model.ops.flatten(dYs)))
        return model.ops.unflatten(dX, model.ops.asarray1i(doc_lengths))

    return Ys, backprop


def pad_empty(width: Optional[int] = None) -> Model[List[Floats2d], List[Floats2d]]:
    """Give an empty doc's (0, width) array one zero row, so that max, first and last
    pooling (which need a row) work on empty docs; the other docs pass unchanged."""
    return Model("pad_empty", _pad_empty_forward, dims={"nI": width, "nO": width})


def _pad_empty_forward(model: Model, Xs: List[Floats2d], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    empty = [x.shape[0] == 0 for x in Xs]
    Ys = [model.ops.alloc2f(1, x.shape[1]) if e else x for x, e in zip(Xs, empty)]

    def backprop(dYs: List[Floats2d]) -> List[Floats2d]:
        return [dy[:0] if e else dy for dy, e in zip(dYs, empty)]

    return Ys, backprop
