"""Looking inside a trained pipeline: the encoder's hidden states and attention
weights for one text, and pictures of them and of a training log.

No typer here (the commands live in `spacy_encoder.cli.inspect_cmds`); matplotlib is
the optional extra `viz` and is imported only by the plotting functions.

Everything runs the trained torch module through `Tok2VecEncoder.forward_with_weights`
(the explicit attention path, eval mode, a batch of one, so there is no padding) on
the same feature ids and the same windows as the fast path that sets `doc.tensor`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple, Union

import numpy
import torch
from spacy.language import Language
from spacy.tokens import Doc
from thinc.api import Model

from . import nodes
from .layers import extract_features, static_vectors
from .pytorch.windows import doc_windows
from .shims import inference_only

TOK2VEC_NODE = nodes.TOK2VEC
VIZ_HINT = "pip install spacy-encoder[viz]"
LOG_FILE_NAME = "log.jsonl"

Window = Tuple[int, int, int, int]  # (start, length, own_start, own_end), as in doc_windows


class InspectError(ValueError):
    """A model, text or log that cannot be inspected; the message says why."""


class MissingExtraError(ImportError):
    """matplotlib (the `viz` extra) is not installed."""


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
            "This encoder was optimized for inference (spacy-encoder script --optimize freeze|int8): "
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
    ids: (n, F) feature ids (spaCy's uint64 hashes reinterpreted as int64).
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
    ids = extract_features([doc], node.attrs["attr_ids"])[start : start + length]  # (n, F)
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
    ids = extract_features([doc], node.attrs["attr_ids"])  # (n, F)
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


# --- Training logs -----------------------------------------------------------------------


def resolve_log(path: Union[str, Path]) -> Path:
    """The log file itself, or `log.jsonl` inside a training output directory."""
    path = Path(path)
    if path.is_dir():
        candidate = path / LOG_FILE_NAME
        if not candidate.exists():
            raise InspectError(
                f"No {LOG_FILE_NAME} in {path}. Train with `--paths.log {candidate}` (the configs' "
                "[training.logger] writes it via output_file = ${paths.log}), or pass the log file."
            )
        return candidate
    if not path.exists():
        raise InspectError(f"{path} does not exist: pass the log file written with --paths.log, or its directory.")
    return path


def read_training_log(path: Union[str, Path]) -> List[Dict[str, Any]]:
    """The records of a `spacy.ConsoleLogger.v3` output file, one per evaluation:
    {"epoch", "step", "losses": {component: loss summed since the previous
    evaluation}, "scores": {score column: value * 100 (except "speed")},
    "score": weighted score in [0, 1]}."""
    path = resolve_log(path)
    lines = path.read_text(encoding="utf8").splitlines()
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # a run still writing its last line
                break
            raise InspectError(f"{path}:{i + 1} is not JSON; expected spacy.ConsoleLogger.v3 output.") from None
        if not isinstance(record, dict) or not {"step", "losses", "scores"} <= record.keys():
            raise InspectError(
                f"{path}:{i + 1} has no step/losses/scores; expected spacy.ConsoleLogger.v3 output."
            )
        records.append(record)
    if not records:
        raise InspectError(f"{path} holds no evaluations yet (one line is written per evaluation).")
    return records


def losses_per_step(records: Sequence[Dict[str, Any]]) -> Dict[str, List[float]]:
    """Each component's mean loss per update since the previous evaluation (spaCy sums
    the losses between evaluations and then resets them)."""
    out: Dict[str, List[float]] = {}
    previous = -1
    for record in records:
        n_steps = max(record["step"] - previous, 1)
        previous = record["step"]
        for name, value in record["losses"].items():
            out.setdefault(name, []).append(float(value) / n_steps)
    return out


# --- Pictures ----------------------------------------------------------------------------


def require_matplotlib() -> None:
    """Fail early, with the install hint, when the `viz` extra is missing."""
    try:
        import matplotlib.backends.backend_agg  # noqa: F401
        import matplotlib.figure  # noqa: F401
    except ImportError as err:
        raise MissingExtraError(f"Pictures need matplotlib: {VIZ_HINT}") from err


def _figure(figsize: Tuple[float, float]) -> Any:
    """A matplotlib Figure on the Agg canvas, without pyplot (no global state)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def attention_grid(n_panels: int) -> Tuple[int, int]:
    """(rows, cols) of the head grid."""
    cols = math.ceil(math.sqrt(n_panels))
    return math.ceil(n_panels / cols), cols


def attention_figure_size(n_tokens: int, n_panels: int) -> Tuple[float, float]:
    """Figure size in inches: one square panel per head, sized to the tokens, plus
    room for the colour bar and the title."""
    rows, cols = attention_grid(n_panels)
    side = min(max(0.28 * n_tokens + 1.6, 3.5), 14.0)
    return round(cols * side + 1.2, 2), round(rows * side + 0.6, 2)


def token_label(text: str) -> str:
    """A token's text as a readable label: whitespace tokens as their repr."""
    if not text.strip():
        return repr(text)
    return text.replace("$", r"\$")


def plot_attention(
    inspection: Inspection,
    path: Union[str, Path],
    layer: int = -1,
    head: Optional[int] = None,
    title: str = "",
    dpi: int = 100,
    token: Optional[int] = None,
) -> Path:
    """Heatmap(s) of one layer's attention: all heads in a grid, or one head.

    layer/head: 1-based (negative counts from the end: -1 is the last layer).
    Rows are the attending (query) tokens, columns the attended (key) tokens.
    token: a doc index whose row is outlined (used when the doc spans several windows).
    """
    if not inspection.weights:
        raise InspectError("This inspection holds no attention weights (it spans several windows).")
    depth, n_heads = len(inspection.weights), inspection.n_heads
    layer_index = _one_based(layer, depth, "layer")
    heads = range(n_heads) if head is None else [_one_based(head, n_heads, "head")]
    weights = inspection.weights[layer_index]  # (H, n, n)
    n = weights.shape[-1]
    fig = _figure(attention_figure_size(n, len(heads)))
    rows, cols = attention_grid(len(heads))
    axes = fig.subplots(rows, cols, squeeze=False)
    labels = [token_label(t) for t in inspection.tokens]
    step = max(1, math.ceil(n / 60))  # keep at most ~60 labels per axis readable
    ticks = list(range(0, n, step))
    if step > 1:  # sampled labels: say which doc token each one is
        labels = [f"{inspection.start + i}:{label}" for i, label in enumerate(labels)]
    vmax = float(max(weights[h].max() for h in heads)) or 1.0
    image = None
    for ax, h in zip(axes.flat, heads):
        image = ax.imshow(weights[h], cmap="viridis", vmin=0.0, vmax=vmax, interpolation="nearest", aspect="equal")
        ax.set_xticks(ticks, [labels[i] for i in ticks], rotation=90, fontsize=8)
        ax.set_yticks(ticks, [labels[i] for i in ticks], fontsize=8)
        ax.set_title(f"head {h + 1} of {n_heads}", fontsize=10)
        ax.set_xlabel("attended token (key)", fontsize=8)
        ax.set_ylabel("attending token (query)", fontsize=8)
        if token is not None and inspection.start <= token < inspection.end:
            row = token - inspection.start
            ax.axhline(row - 0.5, color="red", linewidth=0.8)
            ax.axhline(row + 0.5, color="red", linewidth=0.8)
    for ax in list(axes.flat)[len(heads) :]:
        ax.set_axis_off()
    fig.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
    span = ""
    if inspection.end - inspection.start < inspection.n_doc_tokens:
        span = f", tokens {inspection.start}-{inspection.end - 1} of {inspection.n_doc_tokens}"
    fig.suptitle(f"{title + ': ' if title else ''}layer {layer_index + 1} of {depth}{span}", fontsize=11)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def _one_based(value: int, count: int, what: str) -> int:
    """A 1-based (or negative, from the end) index as a 0-based one."""
    if 1 <= value <= count:
        return value - 1
    if -count <= value <= -1:
        return count + value
    raise InspectError(f"--{what} {value} is out of range: the model has {count} {what}s (1 to {count}, or -1 for the last).")


def plot_training(
    records: Sequence[Dict[str, Any]], path: Union[str, Path], title: str = "", dpi: int = 100
) -> Path:
    """Two panels against the training step: each component's loss (mean per update
    since the previous evaluation) and the dev scores (in %, with the weighted score)."""
    fig = _figure((12.0, 4.8))
    ax_loss, ax_score = fig.subplots(1, 2)
    steps = [r["step"] for r in records]
    for name, values in losses_per_step(records).items():
        ax_loss.plot(steps, values, marker="o", markersize=3, label=name)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss per update (mean since previous evaluation)")
    ax_loss.set_title("training loss")
    columns = [c for c in records[0]["scores"] if c != "speed"]
    for column in columns:
        ax_score.plot(steps, [r["scores"].get(column, float("nan")) for r in records], marker="o", markersize=3, label=column)
    if all("score" in r for r in records):
        ax_score.plot(steps, [100 * r["score"] for r in records], "k--", label="score (weighted)")
    ax_score.set_xlabel("step")
    ax_score.set_ylabel("dev score (%)")
    low, high = ax_score.get_ylim()
    ax_score.set_ylim(min(low, 0.0), max(high, 100.0))
    ax_score.set_title("dev scores")
    for ax in (ax_loss, ax_score):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


@dataclass
class RecallSplit:
    """Gold entities of one evaluation set, split by whether their text was a gold
    entity in training, and how many of each the pipeline found (same span, same label)."""

    name: str
    seen: int = 0
    seen_found: int = 0
    unseen: int = 0
    unseen_found: int = 0

    def as_dict(self) -> Dict[str, Any]:
        total = self.seen + self.unseen

        def share(part: int, whole: int) -> Optional[float]:
            return part / whole if whole else None

        return {
            "name": self.name,
            "entities": total,
            "seen": self.seen,
            "unseen": self.unseen,
            "unseen_share": share(self.unseen, total),
            "seen_recall": share(self.seen_found, self.seen),
            "unseen_recall": share(self.unseen_found, self.unseen),
        }


def entity_names(docs: Sequence[Doc]) -> Set[str]:
    """The texts of the gold entities of `docs`, of any label: what makes a name *seen*
    in training (`seen_unseen_recall`, `tools/vector_coverage.py`)."""
    return {ent.text for doc in docs for ent in doc.ents}


def seen_unseen_recall(nlp: Language, train_docs: Sequence[Doc], eval_docs: Sequence[Doc], name: str = "") -> RecallSplit:
    """Entity recall on names seen and unseen in training.

    A gold entity of `eval_docs` is *seen* when its exact text is a gold entity (of
    any label) somewhere in `train_docs`. The pipeline annotates fresh copies of the
    eval docs (words and spaces only, so no gold annotation reaches it); a gold entity
    is found when a predicted entity has the same start, end and label. Where a model
    loses to another on test but not on dev, this tells whether the loss is on names
    it could have memorised or on new ones.
    """
    train_names = entity_names(train_docs)
    fresh = (Doc(nlp.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc]) for doc in eval_docs)
    split = RecallSplit(name=name)
    for gold, predicted in zip(eval_docs, nlp.pipe(fresh)):
        found = {(ent.start, ent.end, ent.label_) for ent in predicted.ents}
        for ent in gold.ents:
            hit = (ent.start, ent.end, ent.label_) in found
            if ent.text in train_names:
                split.seen += 1
                split.seen_found += hit
            else:
                split.unseen += 1
                split.unseen_found += hit
    return split
