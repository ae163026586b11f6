"""`spacy-encoder annotate text text|corpus`: what a pipeline finds in one text (entities
and cats), or a pipeline run over a corpus of JSONL or Parquet records, here
(`--engine local`, `nlp.pipe`) or on a Ray cluster (`--engine ray`).

A thin layer over `spacy_encoder.annotate`, where both engines live; Ray is
imported only there, and only by the Ray engine.
"""
from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from wasabi import msg

from . import group


class Engine(str, Enum):
    local = "local"
    ray = "ray"


class Format(str, Enum):
    parquet = "parquet"
    jsonl = "jsonl"
    docbin = "docbin"


def _progress(done: int, total: int, seconds: float) -> None:
    rate = done / seconds if seconds else 0.0
    eta = f", {(total - done) / rate:,.0f} s to go" if rate and total > done else ""
    print(f"  {done:,} / {total:,} docs ({100 * done / max(total, 1):.1f}%), {rate:,.0f} docs/s{eta}", file=sys.stderr, flush=True)


@group("annotate").command("corpus")
def annotate_corpus(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="Pipeline directory or installed package name (anything spacy.load takes).")],
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="A JSONL or Parquet file, or a folder of them (one record a doc, with an id and a text field).")],
    output: Annotated[Path, typer.Argument(metavar="OUTPUT", help="Folder to write: shards, _SUCCESS.json and (if docs failed) _failures.jsonl.")],
    engine: Annotated[Engine, typer.Option("--engine", "-e", help="Where to run: local (nlp.pipe in this process, the reference) or ray (needs spacy-encoder[ray]).")] = Engine.local,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output shards: parquet (id, entities, cats), jsonl (the same as JSON lines) or docbin (spaCy DocBins, the id in doc.user_data).")] = Format.parquet,
    text_field: Annotated[str, typer.Option("--text-field", help="The field (column) that holds the text.")] = "text",
    id_field: Annotated[str, typer.Option("--id-field", help="The field (column) that holds the unique id of each record.")] = "id",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Docs per nlp.pipe batch (and per Ray task).")] = 64,
    shard_size: Annotated[int, typer.Option("--shard-size", min=1, help="Docs per output shard: the unit that --resume keeps.")] = 10_000,
    doc_bytes: Annotated[bool, typer.Option("--doc-bytes", help="Also store each Doc serialized (Doc.to_bytes; base64 in JSONL).")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Complete an interrupted run (OUTPUT.staging): finished shards are kept, not redone.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUTPUT if a finished run is there.")] = False,
    address: Annotated[Optional[str], typer.Option("--address", help="Ray: an existing cluster (auto, or ray://HOST:10001); default: start a local one.")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", min=1, help="Ray: annotator workers, each loading the pipeline (default: one per CPU of the cluster).")] = None,
    cpus_per_worker: Annotated[Optional[float], typer.Option("--cpus-per-worker", min=0.01, help="Ray: CPUs each worker reserves (default: 90% of the cluster's CPUs shared out, so the reading never starves).")] = None,
    object_store_mb: Annotated[int, typer.Option("--object-store-mb", min=100, help="Ray, local cluster only: object store size (Ray's default is 30% of RAM).")] = 400,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
) -> None:
    """Annotate every record of INPUT with MODEL and write OUTPUT: entities and cats per id (same output as nlp.pipe, any engine)."""
    from .. import annotate as corpus

    try:
        summary = corpus.annotate_corpus(
            model, input_path, output, engine=engine.value, fmt=fmt.value, text_field=text_field,
            id_field=id_field, batch_size=batch_size, shard_size=shard_size, doc_bytes=doc_bytes,
            resume=resume, overwrite=overwrite, address=address, workers=workers,
            cpus_per_worker=cpus_per_worker, object_store_mb=object_store_mb,
            progress=None if quiet else _progress,
        )
    except corpus.AnnotateError as err:
        msg.fail(str(err))
        raise typer.Exit(1) from None
    except OSError as err:  # a pipeline that does not load, a disk that is full
        msg.fail(f"{err}")
        raise typer.Exit(1) from None
    msg.good(
        f"{output}: {summary.docs:,} docs, {summary.words:,} words in {summary.seconds:,.1f} s "
        f"({summary.docs_per_s:,.0f} docs/s, {summary.words_per_s:,.0f} words/s; engine {summary.engine}, "
        f"{summary.workers} worker{'s' if summary.workers != 1 else ''}, start-up {summary.startup_s:.1f} s)"
    )
    if summary.skipped:
        msg.info(f"{summary.skipped:,} docs were done by the interrupted run and kept")
    if summary.redelivered:
        msg.info(f"{summary.redelivered:,} rows that Ray delivered twice (retried work) were dropped")
    if summary.failures:
        msg.fail(f"{summary.failures:,} docs failed: see {output / corpus.FAILURES_FILE}")
        raise typer.Exit(1)


def annotations(nlp: Any, text: str) -> dict[str, Any]:
    doc = nlp(text)
    return {
        "pipeline": f"{nlp.meta.get('lang', '')}_{nlp.meta.get('name', '')}-{nlp.meta.get('version', '')} {nlp.pipe_names}",
        "ents": [(ent.text, ent.label_, ent.start_char, ent.end_char) for ent in doc.ents],
        "cats": sorted(doc.cats.items(), key=lambda item: -item[1]),
        "has_ner": any(nlp.get_pipe_meta(name).factory in ("ner", "beam_ner", "entity_ruler") for name in nlp.pipe_names),
    }


@group("annotate").command("text")
def annotate(
    model: Annotated[str, typer.Argument(metavar="PACKAGE_OR_PATH", help="Installed pipeline package name (e.g. en_encoder_wikigold_ner) or pipeline folder.")],
    text: Annotated[str, typer.Argument(metavar="TEXT", help="Text to annotate.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
) -> None:
    """Load a pipeline with spacy.load and print the entities and cats it finds in TEXT."""
    import spacy

    try:
        nlp = spacy.load(model)
    except (OSError, ImportError) as err:
        msg.fail(f"Can't load {model!r}: {err}")
        raise typer.Exit(1) from None
    found = annotations(nlp, text)
    if as_json:
        print(json.dumps({"model": model, "text": text, "ents": found["ents"], "cats": dict(found["cats"])}))
        return
    msg.divider(model)
    msg.info(f"Loaded {found['pipeline']}")
    print(f"Text: {text}")
    if found["has_ner"] or found["ents"]:
        if found["ents"]:
            msg.table([(t, label, f"{start}-{end}") for t, label, start, end in found["ents"]], header=("entity", "label", "chars"), divider=True)
        else:
            msg.text("Entities: none found")
    if found["cats"]:
        msg.table([(label, f"{score:.3f}") for label, score in found["cats"]], header=("cat", "score"), divider=True)
