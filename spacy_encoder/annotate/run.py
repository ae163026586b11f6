"""`annotate_corpus`: check the options and the input, prepare (or resume) the staging
folder, run one engine, and finish the output."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Optional

from .collector import Progress, Summary, _Collector, _Options
from .errors import AnnotateError, MissingExtraError
from .local import _run_local
from .ray_engine import DEFAULT_OBJECT_STORE_MB, _local_ray_env, _run_ray, require_ray
from .records import InputScan, ShardWriter, _atomic_write, read_output_ids, scan_input, staging_path

ENGINES = ("local", "ray")
FORMATS = ("parquet", "jsonl", "docbin")
RUN_FILE = "_run.json"
SUCCESS_FILE = "_SUCCESS.json"
FAILURES_FILE = "_failures.jsonl"


def require_pyarrow() -> None:
    """Shards are Arrow tables with either engine (and Parquet is Arrow's format)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError as err:
        raise MissingExtraError(
            f"annotate-corpus needs pyarrow: pip install \"spacy-encoder[annotate]\" (or [ray]); import failed: {err}"
        ) from None


def _check_model(model: str) -> None:
    """Fail before any work on a model that spacy.load cannot find (the workers would
    all fail later, each after loading spaCy)."""
    from spacy.util import is_package

    path = Path(model)
    if path.is_dir():
        if not (path / "config.cfg").exists():
            raise AnnotateError(f"{model}: a folder, but not a spaCy pipeline (no config.cfg)")
    elif not is_package(model):
        raise AnnotateError(f"{model}: no such pipeline folder or installed pipeline package")


def _run_params(options: _Options, scan: InputScan) -> dict[str, Any]:
    return {
        "model": options.model,
        "input": [str(p.resolve()) for p in scan.files],
        "format": options.fmt,
        "text_field": options.text_field,
        "id_field": options.id_field,
        "doc_bytes": options.doc_bytes,
    }


def _prepare_staging(output: Path, params: dict[str, Any], *, resume: bool, overwrite: bool, fmt: str) -> tuple[Path, set[str]]:
    staging = staging_path(output)
    if output.exists() and not overwrite:
        raise AnnotateError(f"{output} exists (a finished run); pass --overwrite to replace it")
    if staging.exists():
        if not resume:
            raise AnnotateError(f"{staging} is left from an interrupted run: pass --resume to complete it, or delete it")
        run_file = staging / RUN_FILE
        previous = json.loads(run_file.read_text()) if run_file.exists() else None
        if previous != params:
            raise AnnotateError(f"{staging} was started with other settings ({previous}); delete it to start again")
        for path in staging.iterdir():
            if path.name.startswith(".") or path.name.endswith(".failures.jsonl"):
                path.unlink()  # a half-written shard, or failures that this run retries
        ids = read_output_ids(staging, fmt)
        done = set(ids)
        if len(done) != len(ids):
            raise AnnotateError(f"{staging}: an id appears in two shards; delete the folder and start again")
        return staging, done
    staging.mkdir(parents=True)
    _atomic_write(staging / RUN_FILE, json.dumps(params, indent=2).encode())
    return staging, set()


def _finish(staging: Path, output: Path, summary: Summary, overwrite: bool) -> None:
    failures = sorted(staging.glob("part-*.failures.jsonl"))
    if failures:
        _atomic_write(staging / FAILURES_FILE, b"".join(p.read_bytes() for p in failures))
        for path in failures:
            path.unlink()
    _atomic_write(staging / SUCCESS_FILE, json.dumps(summary.as_dict(), indent=2).encode())
    if output.exists() and overwrite:
        shutil.rmtree(output) if output.is_dir() else output.unlink()
    os.replace(staging, output)


def annotate_corpus(
    model: str,
    input_path: Path,
    output: Path,
    *,
    engine: str = "local",
    fmt: str = "parquet",
    text_field: str = "text",
    id_field: str = "id",
    batch_size: int = 64,
    shard_size: int = 10_000,
    doc_bytes: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    address: Optional[str] = None,
    workers: Optional[int] = None,
    cpus_per_worker: Optional[float] = None,
    object_store_mb: int = DEFAULT_OBJECT_STORE_MB,
    progress: Optional[Progress] = None,
) -> Summary:
    """Annotate every record of `input_path` with `model` and write OUTPUT, a folder of
    shards (`part-NNNNN.parquet|.jsonl|.spacy`) plus `_SUCCESS.json` (the summary) and,
    if some docs failed, `_failures.jsonl` (id and error of each).

    model (str): Pipeline folder or installed package name.
    input_path (Path): A JSONL or Parquet file, or a folder of them.
    engine (str): "local" (`nlp.pipe` here, the reference) or "ray".
    fmt (str): "parquet" (id, entities, cats[, doc_bytes]), "jsonl" (the same as JSON,
        doc_bytes base64) or "docbin" (spaCy DocBins, the id in `doc.user_data["id"]`).
    shard_size (int): Docs per output shard: the unit a resumed run keeps.
    resume (bool): Complete the interrupted run whose staging folder is there.
    address (str): Ray only: an existing cluster ("auto", "ray://host:10001"); default:
        start a local one of this machine's CPUs with a capped object store.
    workers (int), cpus_per_worker (float): Ray only: the annotator pool (see plan_cpus).
    """
    if engine not in ENGINES:
        raise AnnotateError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if fmt not in FORMATS:
        raise AnnotateError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if batch_size < 1 or shard_size < 1:
        raise AnnotateError("batch size and shard size must be at least 1")
    require_pyarrow()
    if engine == "ray":
        if not address:
            _local_ray_env()
        require_ray()  # before reading millions of records
    _check_model(model)
    output = Path(output)
    options = _Options(model=model, text_field=text_field, id_field=id_field, batch_size=batch_size, shard_size=shard_size, fmt=fmt, doc_bytes=doc_bytes)
    scan = scan_input(Path(input_path), text_field, id_field)
    if len({p.suffix == ".parquet" for p in scan.files}) > 1:
        raise AnnotateError(f"{input_path}: mixes JSONL and Parquet files; use one format per input")
    params = _run_params(options, scan)
    staging, done = _prepare_staging(output, params, resume=resume, overwrite=overwrite, fmt=fmt)
    summary = Summary(output=str(output), engine=engine, skipped=len(done))
    start = time.perf_counter()
    collector = _Collector(ShardWriter(staging, fmt, doc_bytes), options, done, scan.n_docs - len(done), summary, progress, start)
    skip = frozenset(done)
    if engine == "local":
        _run_local(scan, options, skip, collector)
    else:
        _run_ray(scan, options, skip, collector, address=address, workers=workers, cpus_per_worker=cpus_per_worker, object_store_mb=object_store_mb)
    collector.flush()
    summary.seconds = time.perf_counter() - start
    missing = scan.n_docs - len(done)
    if missing:
        raise AnnotateError(f"{missing} of {scan.n_docs} docs never came back; {staging} is kept, run again with --resume")
    _finish(staging, output, summary, overwrite)
    return summary
