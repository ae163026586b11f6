"""`spacy-encoder.OnnxTok2Vec.v1` and `spacy-encoder.OnnxEncoder.v1`: a tok2vec, and an
encoder for the `encode` slot of `spacy.Tok2Vec.v2`, whose encoder is an ONNX graph
that onnxruntime runs, for inference without torch.

The features, static vectors, windows and buckets are the eager layers' own
(`layers.transformer_tok2vec` and `transformer_encoder`, `buckets.run_windows`); only
the torch layer is replaced by `onnx_layer`, which feeds each padded bucket to the
graph:

    ids (B, T, F) int64 [, vectors (B, T, V) float32], lengths (B,) int64   (tok2vec)
    x (B, T, D) float32, lengths (B,) int64                                   (encoder)
      -> graph (hashing, positions, padding mask, encoder layers)
      -> output (B, T, D) float32

The graph is written by `spacy-encoder deploy onnx` (`onnx_export`) and saved in the
pipeline's model file as an attribute of the layer, so `spacy.load` needs no other
file. Nothing here imports torch; onnxruntime is imported when the first doc runs
(`pip install "spacy-encoder[onnx]"`).
"""
from __future__ import annotations

import functools
import multiprocessing
import os
import threading
import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple

import srsly
from thinc.api import Model, deserialize_attr, serialize_attr

from .threads import is_small
from .layers import transformer_encoder, transformer_tok2vec
from .nodes import ONNX_ENCODER, ONNX_TOK2VEC
from .validation import check_attrs, config_errors
from .weights import WeightsError
from .windowing import check_windows

ARCHITECTURE = "spacy-encoder.OnnxTok2Vec.v1"
ENCODER_ARCHITECTURE = "spacy-encoder.OnnxEncoder.v1"
INPUT_IDS, INPUT_X, INPUT_VECTORS, INPUT_LENGTHS, OUTPUT = "ids", "x", "vectors", "lengths", "output"
ORT_HINT = 'pip install "spacy-encoder[onnx]"'
# The environment settings of the sessions' threads (`session_options`).
THREADS_ENV, SPINNING_ENV = "SPACY_ENCODER_ORT_THREADS", "SPACY_ENCODER_ORT_SPINNING"

# onnxruntime's thread pool does not survive a fork: a forked worker
# (nlp.pipe(n_process=2)) makes its own sessions, with one intra-op thread
# (`intra_op_threads`), and never frees those it inherited (freeing one waits on
# threads the fork did not copy).
_forked = False
_runtimes: "weakref.WeakSet[Runtime]" = weakref.WeakSet()
_inherited: List[Any] = []


def _after_fork() -> None:
    global _forked
    _forked = True
    for runtime in list(_runtimes):
        _inherited.extend(runtime._sessions.values())
        runtime._sessions = {}
        runtime._lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


class Runtime:
    """The onnxruntime sessions of one layer's graph in this process, made on first use
    and kept while the layer lives (the runtime is part of the layer's forward
    function), so a call costs a dict lookup: hashing a 10 MB graph took longer than
    running it on a sentence. Keyed by the graph object, since `Model.copy` (spaCy's
    `replace_listeners`) shares the forward function between layers whose graphs may
    later differ; at most `KEEP` graphs. Sessions are safe to run from several threads.
    Pickling drops the sessions; the unpickled layer makes its own.

    Small inputs (`threads.is_small`: one sentence, a single request) run on a second
    session of the same graph with one intra-op thread, made on the first small input,
    unless the main session runs one thread anyway: waking a thread pool for a handful
    of small ops costs more than the work (`SPACY_ENCODER_SMALL_INPUT_TOKENS=0` turns
    this off, as for the torch encoders)."""

    KEEP = 4

    def __init__(self, architecture: str = ARCHITECTURE, first_input: str = INPUT_IDS) -> None:
        self.architecture = architecture
        self.first_input = first_input  # the graph's first input: ids (tok2vec) or x (encoder)
        self._lock = threading.Lock()
        # (id(graph), small) -> (graph, session); the two may hold the same session
        self._sessions: Dict[Tuple[int, bool], Tuple[bytes, Any]] = {}
        _runtimes.add(self)

    def session(self, graph: bytes, small: bool = False) -> Any:
        """The session of `graph`; with `small`, the one-thread session, which is the
        main one where that runs one thread already (decided once, when first asked)."""
        found = self._sessions.get((id(graph), small))
        if found is not None and found[0] is graph:
            return found[1]
        if not graph:
            raise ValueError(f"spacy-encoder: {self.architecture} has no graph: load it from a pipeline written by `spacy-encoder deploy onnx`")
        with self._lock:
            return self._made(graph, small)

    def _made(self, graph: bytes, small: bool) -> Any:
        """`session`'s slow path, under the lock: find or make the session."""
        key = (id(graph), small)
        found = self._sessions.get(key)
        if found is None or found[0] is not graph:
            if small and intra_op_threads() == 1:
                session = self._made(graph, False)
            else:
                session = _new_session(graph, self.architecture, threads=1 if small else None)
            found = (graph, session)
            self._sessions.pop(key, None)
            while len(self._sessions) >= 2 * self.KEEP:
                del self._sessions[next(iter(self._sessions))]
            self._sessions[key] = found
        return found[1]

    def forget(self) -> None:
        """Drop the sessions made so far (a layer that loads a new graph): they would
        otherwise live, with their memory arenas, until `KEEP` newer graphs evict them."""
        with self._lock:
            self._sessions = {}

    def __getstate__(self) -> Dict[str, Any]:
        return {"architecture": self.architecture, "first_input": self.first_input}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__init__(**state)


def build_onnx_tok2vec_v1(
    *,
    width: int,
    attrs: List[str],
    max_length: int,
    window_stride: int,
    vectors_width: int = 0,
) -> Model:
    """An ONNX tok2vec loaded from a saved pipeline (written by `spacy-encoder deploy
    onnx` from a `TransformerTok2Vec.v1`/`.v2` pipeline): the graph comes from the
    pipeline's files. Inference only: it cannot be initialized from scratch or
    trained. Arguments as in `spacy-encoder.TransformerTok2Vec.v2`; they must match
    the saved graph, so they have no defaults except vectors_width (default: 0)."""
    with config_errors(ARCHITECTURE):
        check_attrs(attrs)
        check_windows(max_length, window_stride)
    return transformer_tok2vec(
        onnx_layer(width),
        attrs=list(attrs),
        width=width,
        max_length=max_length,
        window_stride=window_stride,
        vectors_width=vectors_width,
        architecture=ARCHITECTURE,
        name=ONNX_TOK2VEC,
    )


def build_onnx_encoder_v1(*, width: int, max_length: int, window_stride: int) -> Model:
    """An ONNX encoder for the `encode` slot of `spacy.Tok2Vec.v2`, loaded from a saved
    pipeline (written by `spacy-encoder deploy onnx` from a `TransformerEncoder.v1`/
    `.v2` pipeline): the graph comes from the pipeline's files. Inference only.
    Arguments as in `spacy-encoder.TransformerEncoder.v1`; they must match the saved
    graph, so they have no defaults."""
    with config_errors(ENCODER_ARCHITECTURE):
        check_windows(max_length, window_stride)
    layer = onnx_layer(width, architecture=ENCODER_ARCHITECTURE, first_input=INPUT_X)
    return transformer_encoder(layer, width=width, max_length=max_length, window_stride=window_stride, name=ONNX_ENCODER)


def onnx_layer(width: int, graph: bytes = b"", *, architecture: str = ARCHITECTURE, first_input: str = INPUT_IDS) -> Model:
    """The thinc layer that runs an ONNX encoder graph on one padded bucket (the
    inputs `buckets.run_windows` gives a torch layer). `graph`: the serialized ONNX
    model; empty for a placeholder that `from_bytes` fills. `architecture` names the
    registered builder in messages; `first_input`: the graph's first input's name."""
    runtime = Runtime(architecture, first_input)
    return Model(
        "onnx",
        functools.partial(_onnx_forward, runtime),
        init=functools.partial(_onnx_init, runtime),
        attrs={"graph": GraphBytes(graph)},
        dims={"nI": None, "nO": width},
    )


class GraphBytes(bytes):
    """The serialized ONNX graph of an `onnx_layer`: bytes, saved as any bytes attribute
    is (pipelines written before it load unchanged), but checked when loaded
    (`_load_graph`), so that a damaged graph or a missing onnxruntime fails at
    `spacy.load`, not at the first doc."""


@serialize_attr.register(GraphBytes)
def _save_graph(_: GraphBytes, value: Any, name: str, model: Model) -> bytes:
    return srsly.msgpack_dumps(bytes(value))


@deserialize_attr.register(GraphBytes)
def _load_graph(_: GraphBytes, value: bytes, name: str, model: Model) -> GraphBytes:
    graph = GraphBytes(srsly.msgpack_loads(value))
    runtime = model._func.args[0] if isinstance(model._func, functools.partial) else None
    if graph and isinstance(runtime, Runtime):
        runtime.forget()
        check_graph(graph, runtime, model.get_dim("nO") if model.has_dim("nO") else None)
    return graph


def check_graph(graph: GraphBytes, runtime: "Runtime", width: Optional[int]) -> None:
    """Make the session of `graph` (kept by `runtime` for the first doc) and check that
    it is the graph an `onnx_layer` feeds: its inputs by name, and an output of `width`.
    Raises one line: ImportError without onnxruntime, `WeightsError` (which
    `weights.load_pipeline` words with the file's name) for a graph that onnxruntime
    cannot load or that does not fit."""
    where = f"spacy-encoder: the ONNX graph of {runtime.architecture}"
    try:
        session = runtime.session(graph)
    except ImportError:
        raise
    except Exception as err:
        import onnxruntime

        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise WeightsError(
            f"{where} does not load in onnxruntime {onnxruntime.__version__} ({type(err).__name__}: {first[:200]}); "
            "write it again with `spacy-encoder deploy onnx`"
        ) from None
    inputs = {node.name for node in session.get_inputs()}
    expected = {runtime.first_input, INPUT_LENGTHS}
    outputs = {node.name: node.shape for node in session.get_outputs()}
    problem = None
    if not expected <= inputs or not inputs <= expected | {INPUT_VECTORS}:
        problem = f"inputs {sorted(inputs)}, expected {sorted(expected)} (and {INPUT_VECTORS!r} with static vectors)"
    elif OUTPUT not in outputs:
        problem = f"outputs {sorted(outputs)}, expected {OUTPUT!r}"
    elif width is not None and isinstance(outputs[OUTPUT][-1], int) and outputs[OUTPUT][-1] != width:
        problem = f"output width {outputs[OUTPUT][-1]}, but the config's width is {width}"
    if problem:
        raise WeightsError(f"{where} does not fit its layer: {problem}; write it again with `spacy-encoder deploy onnx`")


def _onnx_init(runtime: Runtime, model: Model, X: Any = None, Y: Any = None) -> None:
    if not model.attrs["graph"]:
        eager = "TransformerTok2Vec" if runtime.architecture == ARCHITECTURE else "TransformerEncoder"
        raise ValueError(
            f"{runtime.architecture} cannot be initialized from scratch: its graph comes from a pipeline "
            f"written by `spacy-encoder deploy onnx`. Train spacy-encoder.{eager} instead."
        )


def _onnx_forward(runtime: Runtime, model: Model, inputs: Tuple[Any, ...], is_train: bool) -> Tuple[Any, Callable]:
    if is_train:
        raise ValueError(
            f"spacy-encoder: this encoder is an ONNX graph ({runtime.architecture}: inference only) and cannot "
            "be trained; train the eager pipeline it was made from, or freeze the component (frozen_components)."
        )
    X, *static, lengths = inputs
    ops = model.ops
    feeds = {runtime.first_input: ops.to_numpy(X), INPUT_LENGTHS: ops.to_numpy(lengths).astype("int64", copy=False)}
    if static:
        feeds[INPUT_VECTORS] = ops.to_numpy(static[0]).astype("float32", copy=False)
    small = is_small(X.shape[0] * X.shape[1])  # padded positions B × T
    (Y,) = runtime.session(model.attrs["graph"], small).run([OUTPUT], feeds)  # (B, T, D)

    def backprop(dY: Any) -> Any:
        raise ValueError(f"spacy-encoder: {runtime.architecture} is inference only")

    return ops.asarray(Y), backprop


def _new_session(graph: bytes, architecture: str, threads: Optional[int] = None) -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ImportError(f"spacy-encoder: {architecture} runs on onnxruntime, which is not installed: {ORT_HINT}") from None
    return onnxruntime.InferenceSession(graph, session_options(onnxruntime, threads), providers=["CPUExecutionProvider"])


def session_options(onnxruntime: Any, threads: Optional[int] = None) -> Any:
    """The options of every session this package makes: all graph optimizations, and the
    threads `intra_op_threads` (or `threads`, where given) and `spinning` give."""
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    threads = intra_op_threads() if threads is None else threads
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not spinning():
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def intra_op_threads() -> int:
    """Intra-op threads of a new session: `SPACY_ENCODER_ORT_THREADS` if set; else 1 in
    a worker process (forked, as `nlp.pipe(n_process=...)` under the fork start method
    or a pre-forking server, or started by multiprocessing with spawn or forkserver),
    whose siblings share the cores; else 0, onnxruntime's default (one per core)."""
    value = _env_int(THREADS_ENV, minimum=0)
    if value is not None:
        return value
    if _forked or multiprocessing.parent_process() is not None:
        return 1
    return 0


def spinning() -> bool:
    """Whether a session's threads spin-wait between ops (onnxruntime's default, the
    lowest latency on cores of one's own) or sleep (`SPACY_ENCODER_ORT_SPINNING=0`: on
    a machine shared with other work, as `OMP_WAIT_POLICY=PASSIVE` for torch)."""
    value = _env_int(SPINNING_ENV, minimum=0, maximum=1)
    return value is None or value == 1


def _env_int(name: str, minimum: int, maximum: Optional[int] = None) -> Optional[int]:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    allowed = f"an integer >= {minimum}" if maximum is None else f"{minimum} to {maximum}"
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"spacy-encoder: {name}={raw!r}: expected {allowed}") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"spacy-encoder: {name}={raw!r}: expected {allowed}")
    return value
