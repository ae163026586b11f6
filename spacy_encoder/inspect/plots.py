"""Pictures: attention heatmaps and training curves.

matplotlib is the optional extra `viz`; it is imported only by the functions that draw.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

from .errors import InspectError, MissingExtraError
from .trace import Inspection
from ..training_log import losses_per_step

VIZ_HINT = "pip install spacy-encoder[viz]"


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
