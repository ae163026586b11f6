"""Inspection commands: attention heatmaps, a stage-by-stage trace of one text, and
training curves from a spaCy log file.

MODEL is anything `spacy.load` takes: a pipeline directory or an installed package
name. The work is done by `spacy_encoder.inspect`; pictures need the `viz` extra
(matplotlib), imported only when a picture is drawn.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import numpy
import typer
from wasabi import msg

from . import group, load_pipeline

ModelArg = Annotated[str, typer.Argument(metavar="MODEL", help="Pipeline directory or installed package name (anything spacy.load takes).")]
Text = Annotated[str, typer.Argument(metavar="TEXT", help="The text to run through the pipeline.")]
Component = Annotated[
    Optional[str],
    typer.Option("--component", "-c", help="Component holding the spacy-encoder tok2vec (default: the first that has one)."),
]
Dpi = Annotated[int, typer.Option("--dpi", min=20, help="Resolution of the PNG.")]
TRACE_TOLERANCE = 1e-4


@contextmanager
def _fail_cleanly() -> Iterator[None]:
    """A missing model, a bad index, a missing extra: say what, exit 1."""
    from .. import inspect as insp

    try:
        yield
    except (insp.MissingExtraError, insp.InspectError, insp.TrainingLogError, OSError) as err:
        msg.fail(str(err))
        raise typer.Exit(1) from None


@group("inspect").command("attention")
def attention(
    model: ModelArg,
    text: Text,
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG file to write.")] = Path("attention.png"),
    layer: Annotated[int, typer.Option("--layer", "-l", help="Encoder layer, 1-based; -1 is the last.")] = -1,
    head: Annotated[Optional[int], typer.Option("--head", help="One head, 1-based (default: a grid of all heads).")] = None,
    token: Annotated[int, typer.Option("--token", "-t", help="Doc index of a token; a doc longer than max_length shows the window that holds it.")] = 0,
    component: Component = None,
    dpi: Dpi = 100,
) -> None:
    """Heatmaps of the trained model's attention weights over the tokens of TEXT."""
    from .. import inspect as insp

    with _fail_cleanly():
        insp.require_matplotlib()  # before the model loads
        nlp = load_pipeline(model)
        name, node = insp.find_tok2vec(nlp, component)
        doc = insp.doc_for(nlp, text, name)
        inspection = insp.inspect_window(node, doc, token=token, component=name)
        outlined = token % len(doc) if len(inspection.windows) > 1 else None
        path = insp.plot_attention(
            inspection, output, layer=layer, head=head, title=Path(model).name, dpi=dpi, token=outlined
        )
    span = f"tokens {inspection.start}-{inspection.end - 1} of {inspection.n_doc_tokens}"
    what = "all heads" if head is None else f"head {head}"
    msg.good(f"{path}: {what} of layer {layer if layer > 0 else inspection.depth + layer + 1} ({span})")


@group("inspect").command("trace")
def trace(model: ModelArg, text: Text, component: Component = None) -> None:
    """Print each stage of TEXT through the encoder and check the output against doc.tensor."""
    from .. import inspect as insp

    with _fail_cleanly():
        nlp = load_pipeline(model)
        name, node = insp.find_tok2vec(nlp, component)
        tok2vec_doc = insp.doc_for(nlp, text, name)
        inspection = insp.inspect_doc(node, tok2vec_doc, component=name)
        doc = nlp(text)
        fast, source = insp.fast_path_output(doc, node, tok2vec_doc, name)
    n, n_features = inspection.ids.shape
    width = inspection.output.shape[1]
    msg.divider(f"{Path(model).name}: {name} ({insp.TOK2VEC_NODE})")
    windows = len(inspection.windows)
    msg.text(
        f"{n} token{'s' if n != 1 else ''}, {windows} window{'s' if windows != 1 else ''} "
        f"(max_length {inspection.max_length}, window_stride {inspection.window_stride}); "
        "mean and std over all numbers; values: token 0's first 3"
    )
    msg.text(f"input stage: {insp.input_stage_description(node)}")
    shown = " ".join(insp.token_label(t) for t in inspection.tokens[:12]) + (" ..." if n > 12 else "")
    strings = insp.feature_strings(nlp, inspection.ids[0])
    rows = [
        ("tokens", f"({n},)", "", "", shown),
        (
            f"feature ids ({', '.join(inspection.attrs)})",
            f"({n}, {n_features})",
            "",
            "",
            " ".join(f"{a}={s!r}" for a, s in zip(inspection.attrs, strings)),
        ),
    ]
    for stage, array in inspection.stages:
        shape, mean, std, first = insp.describe_array(array)
        rows.append((stage, shape, mean, std, first))
    shape, mean, std, first = insp.describe_array(fast)
    rows.append((f"output vectors ({source})", shape, mean, std, first))
    msg.table(rows, header=("stage", "shape", "mean", "std", "values (token 0)"), divider=True, aligns=("l", "l", "r", "r", "l"), max_col=80)
    heads = insp.head_summaries(nlp, doc, name, n, width)
    if heads:
        msg.table(heads, header=("head", "reads", "wrote"), divider=True, max_col=100)
    same_shape = fast.shape == inspection.output.shape
    diff = float(numpy.abs(fast - inspection.output).max()) if same_shape and fast.size else 0.0
    check = f"last stage vs {source}: shape {inspection.output.shape} vs {fast.shape}, max |diff| {diff:.2e}"
    if same_shape and diff <= TRACE_TOLERANCE:
        msg.good(f"{check} <= {TRACE_TOLERANCE:g}")
    else:
        msg.fail(f"{check}: the explicit path and the fast path disagree")
        raise typer.Exit(1)


@group("inspect").command("training")
def plot_training(
    train_output: Annotated[Path, typer.Argument(metavar="TRAIN_OUTPUT", help="The log file of spacy train --paths.log FILE, or a directory holding log.jsonl.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG file to write.")] = Path("curves.png"),
    dpi: Dpi = 100,
) -> None:
    """Training loss per component and dev scores against the step, from spaCy's ConsoleLogger.v3 log."""
    from .. import inspect as insp

    with _fail_cleanly():
        insp.require_matplotlib()
        log = insp.resolve_log(train_output)
        records = insp.read_training_log(log)
        path = insp.plot_training(records, output, title=str(log), dpi=dpi)
    msg.good(f"{path}: {len(records)} evaluations, steps {records[0]['step']} to {records[-1]['step']}")


@group("inspect").command("unseen")
def unseen_entities(
    model: ModelArg,
    train: Annotated[Path, typer.Argument(metavar="TRAIN", help="The training corpus (.spacy) that defines which names and words were seen.")],
    eval_paths: Annotated[list[Path], typer.Argument(metavar="EVAL", help="Evaluation corpora (.spacy), e.g. dev and test.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Also write the numbers as JSON.")] = None,
) -> None:
    """Entity recall on names, and tag accuracy on words, seen and unseen in TRAIN, for each EVAL corpus."""
    import json

    from spacy.tokens import DocBin

    from .. import inspect as insp

    with _fail_cleanly():
        nlp = load_pipeline(model)
        assigns = {attr for name in nlp.pipe_names for attr in nlp.get_pipe_meta(name).assigns}
        ents, tags = "doc.ents" in assigns, "token.tag" in assigns
        if not (ents or tags):
            raise insp.InspectError(
                f"'{model}' has no component that sets entities or tags (pipes: {', '.join(nlp.pipe_names) or 'none'})"
            )

        def read(path: Path) -> list:
            if not path.is_file():
                raise insp.InspectError(f"{path}: no such corpus file")
            try:
                return list(DocBin().from_disk(path).get_docs(nlp.vocab))
            except Exception as err:  # a wrong or corrupt file: say which one
                raise insp.InspectError(f"{path}: not a spaCy DocBin ({type(err).__name__}: {err})") from None

        train_docs = read(train)
        rows, tag_rows = [], []
        for path in eval_paths:
            docs = read(path)
            predicted = insp.annotate_copies(nlp, docs)  # once for both splits
            if ents:
                rows.append(insp.seen_unseen_recall(nlp, train_docs, docs, name=str(path), predicted=predicted).as_dict())
            if tags:
                tag_rows.append(insp.seen_unseen_tags(nlp, train_docs, docs, name=str(path), predicted=predicted).as_dict())

    def pct(value: Optional[float]) -> str:
        return "-" if value is None else f"{100 * value:.1f}"

    if ents:
        msg.table(
            [(r["name"], f"{r['entities']:,}", f"{r['unseen']:,} ({pct(r['unseen_share'])}%)", pct(r["seen_recall"]), pct(r["unseen_recall"])) for r in rows],
            header=("corpus", "entities", "unseen in TRAIN", "recall seen", "recall unseen"),
            aligns=("l", "r", "r", "r", "r"),
            divider=True,
        )

        def misses(r: dict, group: str) -> tuple:
            counts = r[f"{group}_misses"]
            total = sum(counts.values())
            return (r["name"], group, f"{total:,}", *(f"{counts[k]:,} ({pct(counts[k] / total if total else None)}%)" for k in insp.MISS_KINDS))

        msg.table(
            [misses(r, group) for r in rows for group in ("seen", "unseen")],
            header=("corpus", "names", "missed", "wrong label", "wrong bounds", "not found"),
            aligns=("l", "l", "r", "r", "r", "r"),
            divider=True,
        )
    if tags:
        msg.table(
            [
                (r["name"], f"{r['tokens']:,}", f"{r['unseen']:,} ({pct(r['unseen_share'])}%)", pct(r["accuracy"]), pct(r["seen_accuracy"]), pct(r["unseen_accuracy"]))
                for r in tag_rows
            ],
            header=("corpus", "tagged words", "unseen in TRAIN", "tag accuracy", "seen", "unseen"),
            aligns=("l", "r", "r", "r", "r", "r"),
            divider=True,
        )
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        written = {"model": model, "train": str(train), "splits": rows}
        if tags:
            written["tags"] = tag_rows
        output.write_text(json.dumps(written, indent=2) + "\n")
        msg.good(f"Wrote {output}")
