"""The encoder's hidden states and attention weights for one text.

Everything runs the trained torch module through `Tok2VecEncoder.forward_with_weights`
(the explicit attention path, eval mode, a batch of one, so there is no padding) on
the same feature ids and the same windows as the fast path that sets `doc.tensor`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Tuple

import numpy
import torch
from spacy.language import Language
from spacy.tokens import Doc
from thinc.api import Model

from .. import nodes
from ..layers import static_vectors, token_ids
from ..pytorch.windows import doc_windows
from ..shims import inference_only
from .errors import InspectError

TOK2VEC_NODE = nodes.TOK2VEC

Window = Tuple[int, int, int, int]  # (start, length, own_start, own_end), as in doc_windows


# --- Finding the encoder ---------------------------------------------------------------


def find_tok2vec(nlp: Language, component: Optional[str] = None) -> Tuple[str, Model]:
    """The first (or `component`'s) model node named "spacy-encoder.tok2vec" in the
    pipeline. Returns (component name, node)."""
    for name, node in nodes.pipeline_encoders(nlp, (TOK2VEC_NODE,)):
        if name in nlp.pipe_names and (component is None or name == component):
            return name, node
    if component is not None and component not in nlp.pipe_names:
        raise InspectError(f"No component '{component}' in the pipeline ({', '.join(nlp.pipe_names) or 'empty'}).")
    where = f"component '{component}'" if component else f"the pipeline ({', '.join(nlp.pipe_names) or 'empty'})"
    raise InspectError(
        f"No {TOK2VEC_NODE} layer in {where}: these commands need a tok2vec built with "
        "spacy-encoder.TransformerTok2Vec (.v1 or .v2)."
    )


def torch_module(node: Model) -> torch.nn.Module:
    """The `Tok2VecEncoder` (eager or TorchScript) inside a tok2vec node."""
    module = nodes.torch_module(node)
    if inference_only(module):
        raise InspectError(
            "This encoder was optimized for inference (spacy-encoder deploy script --optimize freeze|int8): "
            "its layers are folded into one graph. Inspect the eager pipeline it was made from."
        )
    return module


def doc_for(nlp: Language, text: str, component: str) -> Doc:
    """`text` as the tok2vec component sees it: tokenized and run through the
    components before it (which may set the attributes it embeds)."""
    doc = nlp.make_doc(text)
    for name, proc in nlp.pipeline:
        if name == component:
            break
        doc = proc(doc)
    return doc


# --- Running the explicit path ----------------------------------------------------------


@dataclass
class Inspection:
    """The encoder's view of (part of) a doc.

    tokens: texts of the covered tokens, doc[start:end].
    ids: (n, F) feature ids (spaCy's uint64 hashes reinterpreted as int64), then the
        token's bytes where the encoder reads characters (`chars`).
    stages: (name, (n, D) float32) after embedding, after the input stage, after each
        layer (the last normalised like the output).
    weights: per layer, (H, n, n) attention weights (query rows, key columns); only
        when the inspection covers one window.
    windows: the doc's windows, (start, length, own_start, own_end).
    """

    component: str
    tokens: List[str]
    start: int
    end: int
    n_doc_tokens: int
    attrs: List[str]
    ids: numpy.ndarray
    stages: List[Tuple[str, numpy.ndarray]]
    weights: List[numpy.ndarray] = field(default_factory=list)
    windows: List[Window] = field(default_factory=list)
    max_length: int = 0
    window_stride: int = 0

    @property
    def output(self) -> numpy.ndarray:
        """(n, D): the encoder's output vectors (the last stage)."""
        return self.stages[-1][1]

    @property
    def depth(self) -> int:
        return len(self.stages) - 2

    @property
    def n_heads(self) -> int:
        return self.weights[0].shape[0] if self.weights else 0


def _doc_vectors(node: Model, doc: Doc) -> Optional[numpy.ndarray]:
    """(n, V) static vectors of the doc's tokens, for encoders that take them."""
    return numpy.asarray(static_vectors(node, [doc])) if node.attrs.get("vectors_width") else None


def _run_window(
    node: Model, ids: numpy.ndarray, vectors: Optional[numpy.ndarray] = None
) -> Tuple[List[numpy.ndarray], List[numpy.ndarray]]:
    """`forward_with_weights` on one window of (n, F) ids (and (n, V) static vectors,
    for encoders that take them), as a batch of one.
    Returns the states (n, D) and each layer's weights (H, n, n), float32 numpy."""
    shim = nodes.encoder_shim(node)
    module = torch_module(node)
    device = shim.device
    ids_t = torch.from_numpy(numpy.ascontiguousarray(ids)).unsqueeze(0).to(device)  # (1, n, F)
    lengths = torch.tensor([ids.shape[0]], dtype=torch.int64, device=device)  # (1,)
    was_training = module.training
    module.eval()  # no dropout; thinc's predict leaves the module in train mode
    try:
        with torch.no_grad(), torch.autocast(device_type="cuda", enabled=bool(shim._mixed_precision)):
            if vectors is None:
                states, weights = module.forward_with_weights(ids_t, lengths)
            else:
                vectors_t = torch.from_numpy(numpy.ascontiguousarray(vectors)).unsqueeze(0).to(device)  # (1, n, V)
                states, weights = module.forward_with_weights(ids_t, vectors_t, lengths)
    finally:
        module.train(was_training)
    return (
        [s[0].float().cpu().numpy() for s in states],
        [w[0].float().cpu().numpy() for w in weights],
    )


def stage_names(node: Model, depth: int) -> List[str]:
    """Readable names of the `forward_with_weights` states."""
    return (
        ["embeddings", "input stage"]
        + [f"encoder layer {i + 1}" for i in range(depth - 1)]
        + [f"encoder layer {depth} + final norm" if _has_final_norm(node) else f"encoder layer {depth}"]
    )


def _kind(module: Any) -> str:
    return getattr(module, "original_name", None) or type(module).__name__


def _has_final_norm(node: Model) -> bool:
    return _kind(torch_module(node).encoder.final_norm) == "LayerNorm"


def input_stage_description(node: Model) -> str:
    """What the input stage does to the embeddings, e.g. "local conv k=3; rotary
    positions act on q, k in each layer"."""
    encoder = torch_module(node).encoder
    parts = []
    added = {"SinusoidalPositions": "+ sinusoidal positions", "LearnedPositions": "+ learned positions"}
    if _kind(encoder.positions) in added:
        parts.append(added[_kind(encoder.positions)])
    if _kind(encoder.local) == "LocalConvolution":
        try:
            kernel = f" k={int(encoder.local.conv.kernel_size[0])}"
        except Exception:  # a scripted Conv1d may not expose its kernel size
            kernel = ""
        parts.append(f"+ local conv{kernel}")
    layers = list(encoder.layers.children())  # a scripted ModuleList cannot be indexed
    if layers and _kind(layers[0].attention.rotary) == "RotaryPositions":
        parts.append("rotary positions act on q, k in each layer")
    return "; ".join(parts) if parts else "no positions, no local conv"


def _window_for(windows: Sequence[Window], token: int) -> Window:
    for window in windows:
        if window[2] <= token < window[3]:
            return window
    raise AssertionError("doc_windows' owned ranges partition the doc")


def inspect_window(node: Model, doc: Doc, token: int = 0, component: str = "") -> Inspection:
    """States and attention weights of the window that holds doc[token] (the window
    from which the fast path takes that token's vector)."""
    n = len(doc)
    if n == 0:
        raise InspectError("The text has no tokens.")
    if not -n <= token < n:
        raise InspectError(f"Token index {token} is out of range: the doc has {n} tokens (0 to {n - 1}).")
    token %= n
    max_length, stride = node.attrs["max_length"], node.attrs["window_stride"]
    windows = doc_windows(n, max_length, stride)
    start, length, _, _ = _window_for(windows, token)
    ids = token_ids(node, [doc])[start : start + length]  # (n, F)
    vectors = _doc_vectors(node, doc)
    states, weights = _run_window(node, ids, None if vectors is None else vectors[start : start + length])
    return Inspection(
        component=component,
        tokens=[t.text for t in doc[start : start + length]],
        start=start,
        end=start + length,
        n_doc_tokens=n,
        attrs=list(node.attrs["attrs"]),
        ids=ids,
        stages=list(zip(stage_names(node, len(weights)), states)),
        weights=weights,
        windows=windows,
        max_length=max_length,
        window_stride=stride,
    )


def inspect_doc(node: Model, doc: Doc, component: str = "") -> Inspection:
    """States of the whole doc: every window run on its own, each stage stitched
    from the windows' owned ranges exactly as the fast path stitches its output (so
    the last stage is `doc.tensor`). Attention weights are kept only when the doc
    fits in one window."""
    n = len(doc)
    if n == 0:
        raise InspectError("The text has no tokens.")
    max_length, stride = node.attrs["max_length"], node.attrs["window_stride"]
    windows = doc_windows(n, max_length, stride)
    ids = token_ids(node, [doc])  # (n, F)
    vectors = _doc_vectors(node, doc)
    stitched: List[numpy.ndarray] = []
    weights: List[numpy.ndarray] = []
    for start, length, own_start, own_end in windows:
        window_vectors = None if vectors is None else vectors[start : start + length]
        states, window_weights = _run_window(node, ids[start : start + length], window_vectors)
        if not stitched:
            stitched = [numpy.zeros((n, s.shape[1]), dtype="float32") for s in states]
        for whole, part in zip(stitched, states):
            whole[own_start:own_end] = part[own_start - start : own_end - start]
        if len(windows) == 1:
            weights = window_weights
    depth = len(stitched) - 2
    return Inspection(
        component=component,
        tokens=[t.text for t in doc],
        start=0,
        end=n,
        n_doc_tokens=n,
        attrs=list(node.attrs["attrs"]),
        ids=ids,
        stages=list(zip(stage_names(node, depth), stitched)),
        weights=weights,
        windows=windows,
        max_length=max_length,
        window_stride=stride,
    )


def fast_path_output(doc: Doc, node: Model, tok2vec_doc: Doc, component: str) -> Tuple[numpy.ndarray, str]:
    """The encoder output by the ordinary route: `doc.tensor` of `doc = nlp(text)` when
    the component sets it (a `tok2vec` component), else the node's own `predict` on
    `tok2vec_doc` (the doc as the component sees it). Returns (the (n, D) array,
    where it came from)."""
    tensor = doc.tensor
    width = node.get_dim("nO")
    if tensor is not None and tuple(tensor.shape) == (len(doc), width):
        return numpy.asarray(node.ops.to_numpy(tensor), dtype="float32"), "doc.tensor"
    (vectors,) = node.predict([tok2vec_doc])
    return numpy.asarray(node.ops.to_numpy(vectors), dtype="float32"), f"{component}'s model.predict"


# --- Summaries for the trace --------------------------------------------------------------


def feature_strings(nlp: Language, ids: numpy.ndarray) -> List[str]:
    """The strings behind one token's feature ids (row of `ids`), or the hex id."""
    out = []
    for value in ids.view("uint64").tolist():
        try:
            out.append(nlp.vocab.strings[value])
        except KeyError:
            out.append(hex(value))
    return out


def head_summaries(nlp: Language, doc: Doc, component: str, n_tokens: int, width: int) -> List[Tuple[str, str, str]]:
    """(component, what it reads, what it wrote on the doc) for each component after
    the tok2vec."""
    proc = nlp.get_pipe(component)
    listening = set(getattr(proc, "listening_components", []) or [])
    rows = []
    after = False
    for name, pipe in nlp.pipeline:
        if name == component:
            after = True
            continue
        if not after:
            continue
        factory = nlp.get_pipe_meta(name).factory
        reads = f"({n_tokens}, {width}) via listener" if name in listening else "the doc"
        if factory in ("ner", "beam_ner", "entity_ruler", "entity_linker"):
            ents = ", ".join(f"{e.text} ({e.label_})" for e in doc.ents)
            wrote = f"doc.ents ({len(doc.ents)})" + (f": {ents}" if ents else "")
        elif factory.startswith("textcat"):
            cats = sorted(doc.cats.items(), key=lambda kv: -kv[1])
            wrote = f"doc.cats ({len(cats)},): " + ", ".join(f"{k} {v:.3f}" for k, v in cats[:6])
            if len(cats) > 6:
                wrote += ", ..."
        elif factory in ("tagger", "morphologizer"):
            attr = "tag_" if factory == "tagger" else "morph"
            wrote = f"token.{attr}: " + " ".join(str(getattr(t, attr)) for t in doc[:8])
        elif factory in ("parser", "beam_parser", "senter"):
            wrote = f"{len(list(doc.sents))} sentences"
        elif factory == "spancat" or factory == "spancat_singlelabel":
            key = getattr(pipe, "key", "sc")
            wrote = f"doc.spans['{key}']: {len(doc.spans.get(key, []))}"
        else:
            wrote = f"({factory})"
        rows.append((f"{name} ({factory})" if factory != name else name, reads, wrote))
    return rows


def describe_array(array: numpy.ndarray, n_first: int = 3) -> Tuple[str, str, str, str]:
    """(shape, mean, std, first numbers of row 0) for a stage."""
    first = " ".join(f"{v:+.3f}" for v in array[0, :n_first]) if array.size else ""
    return str(tuple(array.shape)), f"{array.mean():+.4f}", f"{array.std():.4f}", first
