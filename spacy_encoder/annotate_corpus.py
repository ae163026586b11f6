"""Annotate a corpus with a spaCy pipeline: locally with `nlp.pipe`, or on a Ray cluster.

The two engines share everything but the loop that runs the pipeline:

- `scan_input` reads the input once on the driver (JSONL or Parquet, one file or a
  folder), checks every record (an id and a text field, a string text, unique ids)
  and counts the docs, so a bad corpus fails before any work starts.
- `CorpusAnnotator` turns a batch of records into rows (id, entities, cats, optionally
  the serialized Doc). It loads the pipeline itself: give it to `Dataset.map_batches`
  and each Ray worker loads its own copy (a loaded `nlp` must never travel through
  Ray's object store, spaCy#13506).
- `ShardWriter` writes rows in shards to a staging folder, `OUTPUT.staging/`, each
  shard written to a temporary name and renamed when complete; when every doc is done
  the staging folder is renamed to OUTPUT. A crashed run never leaves a half output
  under the final name, and `resume=True` finishes it: the ids of the shards already
  written are skipped, so nothing is redone or duplicated.
- `_run_local` is the reference (`nlp.pipe` in this process); `_run_ray` reads with
  Ray Data, annotates with an actor pool of `CorpusAnnotator`s and streams the rows
  back to the driver, which writes them. Ray restarts a killed worker and retries its
  batch; rows that arrive twice (a retried batch whose first result also arrived) are
  dropped by id, so the output holds each id exactly once.

Ray is the optional extra `spacy-encoder[ray]`, imported only by the Ray engine.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

ENGINES = ("local", "ray")
FORMATS = ("parquet", "jsonl", "docbin")
EXTENSIONS = {"parquet": ".parquet", "jsonl": ".jsonl", "docbin": ".spacy"}
JSON_SUFFIXES = (".jsonl", ".json")
INPUT_SUFFIXES = JSON_SUFFIXES + (".parquet",)
RUN_FILE = "_run.json"
SUCCESS_FILE = "_SUCCESS.json"
FAILURES_FILE = "_failures.jsonl"
STAGING_SUFFIX = ".staging"
# Ray: CPUs a read task asks for, and the share of the cluster's CPUs the annotator pool
# may take. A pool that takes every CPU leaves the read tasks unscheduled and the job
# hangs (ray#44687), so the pool asks for fractional CPUs.
READ_TASK_CPUS = 0.05
POOL_CPU_SHARE = 0.9
DEFAULT_OBJECT_STORE_MB = 400
RAY_PIN = "ray[data]>=2.60,<2.61"


class AnnotateError(Exception):
    """Bad input, a bad option or an output in the way: the message says which."""


class MissingExtraError(AnnotateError):
    """The Ray engine without Ray installed."""


# --- input --------------------------------------------------------------------------


def input_files(path: Path) -> list[Path]:
    """The JSONL (.jsonl, .json: one JSON object a line) and Parquet files of `path`,
    a file or a folder (not recursive), in name order."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in INPUT_SUFFIXES and not p.name.startswith((".", "_")))
        if not files:
            raise AnnotateError(f"{path}: no .jsonl, .json or .parquet files in this folder")
        return files
    if not path.exists():
        raise AnnotateError(f"{path}: no such file or folder")
    if path.suffix not in INPUT_SUFFIXES:
        raise AnnotateError(f"{path}: not a .jsonl, .json or .parquet file")
    return [path]


def _check_id(value: Any, where: str, id_field: str) -> str:
    # bool is an int in Python; a true/false id is a mistake, not an id.
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        kind = "missing (null)" if value is None else f"a {type(value).__name__} ({value!r:.40})"
        raise AnnotateError(f"{where}: the id field '{id_field}' is {kind}; ids must be strings or integers")
    return str(value)


def _check_text(value: Any, where: str, text_field: str) -> str:
    if not isinstance(value, str):
        kind = "missing (null)" if value is None else f"a {type(value).__name__} ({value!r:.40}), not text"
        raise AnnotateError(f"{where}: the text field '{text_field}' is {kind}")
    return value


def _iter_jsonl(path: Path, text_field: str, id_field: str) -> Iterator[tuple[Any, str, str]]:
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise AnnotateError(f"{where}: not a JSON object ({err.msg})") from None
            if not isinstance(record, dict):
                raise AnnotateError(f"{where}: not a JSON object but a {type(record).__name__}")
            for name in (id_field, text_field):
                if name not in record:
                    raise AnnotateError(f"{where}: no field '{name}' (fields: {', '.join(sorted(record)) or 'none'})")
            yield record[id_field], _check_text(record[text_field], where, text_field), where


def _iter_parquet(path: Path, text_field: str, id_field: str) -> Iterator[tuple[Any, str, str]]:
    import pyarrow
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pyarrow.ArrowException, OSError) as err:
        raise AnnotateError(f"{path}: unreadable Parquet file ({err})") from None
    names = parquet.schema_arrow.names
    for name in (id_field, text_field):
        if name not in names:
            raise AnnotateError(f"{path}: no column '{name}' (columns: {', '.join(names) or 'none'})")
    text_type = parquet.schema_arrow.field(text_field).type
    if not (pyarrow.types.is_string(text_type) or pyarrow.types.is_large_string(text_type)):
        raise AnnotateError(f"{path}: the text column '{text_field}' holds {text_type}, not text")
    row = 0
    try:
        for batch in parquet.iter_batches(columns=[id_field, text_field], batch_size=8192):
            for value, text in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
                row += 1
                where = f"{path}: row {row}"
                yield value, _check_text(text, where, text_field), where
    except (pyarrow.ArrowException, OSError) as err:
        raise AnnotateError(f"{path}: unreadable Parquet file ({err})") from None


def iter_records(files: Sequence[Path], text_field: str = "text", id_field: str = "id") -> Iterator[tuple[str, str]]:
    """(id, text) of every record of `files`, checked; ids as strings."""
    for path in files:
        reader = _iter_parquet if path.suffix == ".parquet" else _iter_jsonl
        n = 0
        for value, text, where in reader(path, text_field, id_field):
            n += 1
            yield _check_id(value, where, id_field), text
        if n == 0:
            raise AnnotateError(f"{path}: empty, no records")


@dataclass
class InputScan:
    files: list[Path]
    n_docs: int
    n_chars: int


def scan_input(path: Path, text_field: str = "text", id_field: str = "id") -> InputScan:
    """Read the whole input once and check it: fields present, texts are strings, ids
    unique and of one kind (all strings or all integers, so that Parquet and Ray
    Data's JSON reader see one column type). Raises AnnotateError naming the record."""
    files = input_files(path)
    seen: set[str] = set()
    kinds: set[type] = set()
    n_chars = 0
    for path_ in files:
        reader = _iter_parquet if path_.suffix == ".parquet" else _iter_jsonl
        n = 0
        for value, text, where in reader(path_, text_field, id_field):
            n += 1
            key = _check_id(value, where, id_field)
            kinds.add(type(value))
            if len(kinds) > 1:
                raise AnnotateError(f"{where}: id {value!r} is a {type(value).__name__}, earlier ids are not; use one kind of id")
            if key in seen:
                raise AnnotateError(f"{where}: duplicate id {value!r}; ids must be unique")
            seen.add(key)
            n_chars += len(text)
        if n == 0:
            raise AnnotateError(f"{path_}: empty, no records")
    return InputScan(files=files, n_docs=len(seen), n_chars=n_chars)


# --- the annotator ------------------------------------------------------------------


def _schema(doc_bytes: bool):
    import pyarrow as pa

    entity = pa.struct([("start_char", pa.int64()), ("end_char", pa.int64()), ("label", pa.string())])
    fields = [
        ("id", pa.string()),
        ("entities", pa.list_(entity)),
        ("cats", pa.map_(pa.string(), pa.float64())),
        ("n_words", pa.int64()),
        ("error", pa.string()),
    ]
    if doc_bytes:
        fields.append(("doc_bytes", pa.binary()))
    return pa.schema(fields)


OUTPUT_COLUMNS = ("id", "entities", "cats", "doc_bytes")


def _column(batch: Any, name: str) -> list:
    """A column of a Ray batch (dict of numpy arrays or lists, pandas, pyarrow) as a list."""
    if hasattr(batch, "column_names"):  # pyarrow.Table
        return batch.column(name).to_pylist()
    column = batch[name]
    return column.tolist() if hasattr(column, "tolist") else list(column)


class CorpusAnnotator:
    """Annotate batches of records with a spaCy pipeline; a callable class for Ray Data.

    ```python
    ds = ray.data.read_json("corpus/")
    ds = ds.map_batches(CorpusAnnotator, fn_constructor_kwargs={"model": "en_my_ner"},
                        concurrency=4, num_cpus=0.9, batch_size=256)
    ```

    Each instance loads the pipeline where it runs (a worker): pass the model's name or
    folder, never a loaded `nlp` (spaCy#13506). A batch (a dict of columns, a pandas
    DataFrame or a pyarrow Table) with the id and text columns becomes a pyarrow Table
    of `id` (string), `entities` (list of start_char/end_char/label), `cats` (map of
    label to score), `n_words`, `error` (null, or why this doc failed) and, with
    `doc_bytes=True`, `doc_bytes` (`Doc.to_bytes()`).

    model (str): Pipeline folder or installed package name (anything spacy.load takes).
    text_field, id_field (str): The columns holding the text and the id.
    doc_bytes (bool): Also return each Doc serialized.
    batch_size (int): `nlp.pipe` batch size inside the worker.
    torch_threads (int): Torch threads of this worker; set it from the worker's CPU
        share (1 for a fractional share). `nlp.pipe` runs with n_process=1 here: the
        workers are the parallelism.
    skip_ids (Iterable[str]): Ids to drop without annotating (a resumed run's done ids).
    """

    def __init__(
        self,
        model: str,
        *,
        text_field: str = "text",
        id_field: str = "id",
        doc_bytes: bool = False,
        batch_size: int = 64,
        torch_threads: int = 1,
        skip_ids: Optional[Iterable[str]] = None,
    ) -> None:
        import spacy
        import torch

        torch.set_num_threads(max(1, int(torch_threads)))
        self.nlp = spacy.load(model)
        self.text_field = text_field
        self.id_field = id_field
        self.doc_bytes = doc_bytes
        self.batch_size = batch_size
        self.skip_ids = frozenset(skip_ids or ())
        self.schema = _schema(doc_bytes)

    def __call__(self, batch: Any):
        ids = [_check_id(v, f"record with id {v!r}", self.id_field) for v in _column(batch, self.id_field)]
        texts = [_check_text(t, f"record {i!r}", self.text_field) for i, t in zip(ids, _column(batch, self.text_field))]
        if self.skip_ids:
            kept = [(i, t) for i, t in zip(ids, texts) if i not in self.skip_ids]
            ids, texts = [i for i, _ in kept], [t for _, t in kept]
        return self.annotate(ids, texts)

    def annotate(self, ids: Sequence[str], texts: Sequence[str]):
        """Rows for `ids` and `texts` as a pyarrow Table (see the class)."""
        import pyarrow as pa

        try:
            docs: list[Any] = list(self.nlp.pipe(texts, batch_size=self.batch_size))
            errors: list[Optional[str]] = [None] * len(docs)
        except Exception:  # one bad doc: annotate one by one to find it, keep the rest
            docs, errors = [], []
            for text in texts:
                try:
                    docs.append(self.nlp(text))
                    errors.append(None)
                except Exception as err:
                    docs.append(None)
                    errors.append(f"{type(err).__name__}: {err}")
        columns: dict[str, list] = {"id": list(ids), "entities": [], "cats": [], "n_words": [], "error": errors}
        if self.doc_bytes:
            columns["doc_bytes"] = []
        for doc in docs:
            columns["entities"].append([] if doc is None else [{"start_char": e.start_char, "end_char": e.end_char, "label": e.label_} for e in doc.ents])
            columns["cats"].append([] if doc is None else [(k, float(v)) for k, v in doc.cats.items()])
            columns["n_words"].append(0 if doc is None else len(doc))
            if self.doc_bytes:
                columns["doc_bytes"].append(None if doc is None else doc.to_bytes(exclude=["tensor"]))
        return pa.Table.from_pydict(columns, schema=self.schema)


# --- output -------------------------------------------------------------------------


def staging_path(output: Path) -> Path:
    return output.with_name(output.name + STAGING_SUFFIX)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _cats_dict(value: Any) -> dict[str, float]:
    return dict(value) if value else {}


class ShardWriter:
    """Write rows as numbered shards into the staging folder, each one atomically."""

    def __init__(self, staging: Path, fmt: str, doc_bytes: bool) -> None:
        self.staging = staging
        self.fmt = fmt
        self.doc_bytes = doc_bytes
        existing = [int(p.name.split("-")[1].split(".")[0]) for p in staging.glob("part-*") if not p.name.startswith(".")]
        self.next_index = max(existing, default=-1) + 1

    def write(self, table) -> Optional[Path]:
        """Write the rows of `table` (a CorpusAnnotator table) as the next shard; failed
        rows go to a failures file beside it. Returns the shard's path (None if no rows)."""
        if table.num_rows == 0:
            return None
        import pyarrow.compute as pc

        failed = table.filter(pc.is_valid(table.column("error")))
        good = table.filter(pc.is_null(table.column("error")))
        name = f"part-{self.next_index:05d}"
        self.next_index += 1
        if failed.num_rows:
            lines = [json.dumps({"id": i, "error": e}) + "\n" for i, e in zip(failed.column("id").to_pylist(), failed.column("error").to_pylist())]
            _atomic_write(self.staging / f"{name}.failures.jsonl", "".join(lines).encode("utf-8"))
        if good.num_rows == 0:
            return None
        path = self.staging / f"{name}{EXTENSIONS[self.fmt]}"
        _atomic_write(path, self._encode(good))
        return path

    def _encode(self, table) -> bytes:
        if self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            columns = [c for c in OUTPUT_COLUMNS if c in table.column_names and (c != "doc_bytes" or self.doc_bytes)]
            sink = pa.BufferOutputStream()
            pq.write_table(table.select(columns), sink)
            return sink.getvalue().to_pybytes()
        if self.fmt == "jsonl":
            rows = []
            data = table.to_pydict()
            for n, id_ in enumerate(data["id"]):
                row: dict[str, Any] = {"id": id_, "entities": data["entities"][n], "cats": _cats_dict(data["cats"][n])}
                if self.doc_bytes:
                    row["doc_bytes"] = base64.b64encode(data["doc_bytes"][n]).decode("ascii")
                rows.append(json.dumps(row, ensure_ascii=False) + "\n")
            return "".join(rows).encode("utf-8")
        from spacy.tokens import Doc, DocBin
        from spacy.vocab import Vocab

        vocab = Vocab()
        docbin = DocBin(store_user_data=True)
        for id_, data in zip(table.column("id").to_pylist(), table.column("doc_bytes").to_pylist()):
            doc = Doc(vocab).from_bytes(data)
            doc.user_data["id"] = id_
            docbin.add(doc)
        return docbin.to_bytes()


def read_output_ids(folder: Path, fmt: str) -> list[str]:
    """The ids in the finished shards of an output or staging folder, in shard order
    (with repeats, if there were any)."""
    ids: list[str] = []
    for path in sorted(folder.glob(f"part-*{EXTENSIONS[fmt]}")):
        if path.name.endswith(".failures.jsonl"):
            continue
        if fmt == "parquet":
            import pyarrow.parquet as pq

            ids.extend(pq.read_table(path, columns=["id"]).column("id").to_pylist())
        elif fmt == "jsonl":
            with path.open(encoding="utf-8") as f:
                ids.extend(json.loads(line)["id"] for line in f if line.strip())
        else:
            from spacy.tokens import DocBin
            from spacy.vocab import Vocab

            ids.extend(doc.user_data["id"] for doc in DocBin().from_bytes(path.read_bytes()).get_docs(Vocab()))
    return ids


def read_output(folder: Path, fmt: str = "parquet") -> dict[str, dict[str, Any]]:
    """{id: {"entities": [(start_char, end_char, label), ...], "cats": {label: score}}}
    of a finished output folder; for tests and checks."""
    folder = Path(folder)
    rows: dict[str, dict[str, Any]] = {}

    def add(id_: str, entities: list, cats: dict) -> None:
        if id_ in rows:
            raise AnnotateError(f"{folder}: id {id_!r} appears twice")
        rows[id_] = {"entities": [tuple(e) for e in entities], "cats": cats}

    for path in sorted(folder.glob(f"part-*{EXTENSIONS[fmt]}")):
        if path.name.endswith(".failures.jsonl"):
            continue
        if fmt == "parquet":
            import pyarrow.parquet as pq

            data = pq.read_table(path).to_pydict()
            for id_, ents, cats in zip(data["id"], data["entities"], data["cats"]):
                add(id_, [(e["start_char"], e["end_char"], e["label"]) for e in ents], _cats_dict(cats))
        elif fmt == "jsonl":
            for line in path.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                add(row["id"], [(e["start_char"], e["end_char"], e["label"]) for e in row["entities"]], row["cats"])
        else:
            from spacy.tokens import DocBin
            from spacy.vocab import Vocab

            for doc in DocBin().from_bytes(path.read_bytes()).get_docs(Vocab()):
                add(doc.user_data["id"], [(e.start_char, e.end_char, e.label_) for e in doc.ents], dict(doc.cats))
    return rows


# --- the run ------------------------------------------------------------------------


@dataclass
class Summary:
    """What a run did. `docs` and `words` count this run's docs (not those a resumed run
    skipped); `startup_s` is the time to the first annotated batch (loading the
    pipeline, and for Ray starting or joining the cluster)."""

    output: str
    engine: str
    docs: int = 0
    words: int = 0
    skipped: int = 0
    failures: int = 0
    redelivered: int = 0
    workers: int = 1
    seconds: float = 0.0
    startup_s: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def docs_per_s(self) -> float:
        return self.docs / self.seconds if self.seconds else 0.0

    @property
    def words_per_s(self) -> float:
        return self.words / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "docs_per_s": self.docs_per_s, "words_per_s": self.words_per_s}


Progress = Callable[[int, int, float], None]  # (docs done, docs to do, seconds so far)


@dataclass
class _Options:
    model: str
    text_field: str
    id_field: str
    batch_size: int
    shard_size: int
    fmt: str
    doc_bytes: bool

    @property
    def annotator_doc_bytes(self) -> bool:
        return self.doc_bytes or self.fmt == "docbin"


class _Collector:
    """Buffer annotated rows, drop repeats, write full shards, count, report progress."""

    def __init__(self, writer: ShardWriter, options: _Options, done: set[str], total: int, summary: Summary, progress: Optional[Progress], start: float) -> None:
        self.writer, self.options, self.done, self.total = writer, options, done, total
        self.summary, self.progress, self.start = summary, progress, start
        self.buffer: list = []
        self.buffered = 0
        self.last_report = 0.0

    def add(self, table) -> None:
        import pyarrow as pa

        if not self.summary.startup_s:
            self.summary.startup_s = time.perf_counter() - self.start
        ids = table.column("id").to_pylist()
        fresh = [i for i, id_ in enumerate(ids) if id_ not in self.done]
        if len(fresh) < len(ids):
            self.summary.redelivered += len(ids) - len(fresh)
            table = table.take(pa.array(fresh, type=pa.int64()))
            ids = [ids[i] for i in fresh]
        if len(set(ids)) < len(ids):
            raise AnnotateError("the same id came back twice in one batch")  # scan_input rules this out
        self.done.update(ids)
        self.summary.docs += table.num_rows
        self.summary.words += sum(table.column("n_words").to_pylist())
        self.summary.failures += table.num_rows - table.column("error").null_count
        self.buffer.append(table)
        self.buffered += table.num_rows
        if self.buffered >= self.options.shard_size:
            self.flush()
        now = time.perf_counter()
        if self.progress is not None and now - self.last_report >= 2.0:
            self.last_report = now
            self.progress(self.summary.docs, self.total, now - self.start)

    def flush(self) -> None:
        import pyarrow as pa

        if self.buffer:
            self.writer.write(pa.concat_tables(self.buffer))
        self.buffer, self.buffered = [], 0


def _chunks(records: Iterator[tuple[str, str]], size: int) -> Iterator[tuple[list[str], list[str]]]:
    ids: list[str] = []
    texts: list[str] = []
    for id_, text in records:
        ids.append(id_)
        texts.append(text)
        if len(ids) == size:
            yield ids, texts
            ids, texts = [], []
    if ids:
        yield ids, texts


def _run_local(scan: InputScan, options: _Options, skip: frozenset[str], collector: _Collector) -> None:
    """The reference: `nlp.pipe` in this process, n_process=1."""
    annotator = CorpusAnnotator(
        options.model, text_field=options.text_field, id_field=options.id_field,
        doc_bytes=options.annotator_doc_bytes, batch_size=options.batch_size,
        torch_threads=int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or (os.cpu_count() or 1),
    )
    pending = ((i, t) for i, t in iter_records(scan.files, options.text_field, options.id_field) if i not in skip)
    for ids, texts in _chunks(pending, max(options.batch_size, min(options.shard_size, 4096))):
        collector.add(annotator.annotate(ids, texts))


def require_pyarrow() -> None:
    """Shards are Arrow tables with either engine (and Parquet is Arrow's format)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError as err:
        raise MissingExtraError(
            f"annotate-corpus needs pyarrow: pip install \"spacy-encoder[annotate]\" (or [ray]); import failed: {err}"
        ) from None


def require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise MissingExtraError(
            f"The Ray engine needs Ray: pip install \"spacy-encoder[ray]\" (that is {RAY_PIN}); import failed: {err}"
        ) from None
    return ray


def plan_cpus(cluster_cpus: float, workers: Optional[int], cpus_per_worker: Optional[float] = None) -> tuple[int, float, int]:
    """(workers, CPUs each worker asks Ray for, torch threads each) for a cluster of
    `cluster_cpus`. Unless told otherwise the pool takes POOL_CPU_SHARE of the CPUs,
    so the read tasks (READ_TASK_CPUS each) always find room (ray#44687)."""
    if cluster_cpus <= 0:
        raise AnnotateError("the Ray cluster has no CPUs")
    n = workers or max(1, int(cluster_cpus))
    if n < 1:
        raise AnnotateError(f"--workers must be at least 1, not {n}")
    share = cpus_per_worker if cpus_per_worker else min(1.0, POOL_CPU_SHARE * cluster_cpus / n)
    if share * n > cluster_cpus - READ_TASK_CPUS + 1e-9:
        raise AnnotateError(
            f"{n} workers x {share:g} CPUs leave no CPU of the cluster's {cluster_cpus:g} for reading the input "
            "(the job would hang, ray#44687); use fewer workers or fractional --cpus-per-worker"
        )
    return n, share, max(1, int(share))


def _parquet_pieces(files: Sequence[str]) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    return [{"path": f, "row_group": g} for f in files for g in range(pq.ParquetFile(f).num_row_groups)]


class _ParquetPieceReader:
    """Read the id and text columns of the row groups named by a batch of pieces."""

    def __init__(self, id_field: str, text_field: str) -> None:
        self.columns = [id_field, text_field]

    def __call__(self, batch):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pieces = batch.to_pylist()
        return pa.concat_tables(pq.ParquetFile(p["path"]).read_row_group(p["row_group"], columns=self.columns) for p in pieces)


def _local_ray_env() -> None:
    """Ray >= 2.59 turns on token authentication for a new local cluster and, without
    a token, writes one to ~/.ray/auth_token. Keep token auth but with a token of this
    process (inherited by the cluster it starts), unless the user chose a mode. Ray
    reads the mode when it is imported, so this must run first; once Ray is imported,
    its own default applies."""
    import sys

    if "RAY_AUTH_MODE" not in os.environ and "ray" not in sys.modules:
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))


def _run_ray(scan: InputScan, options: _Options, skip: frozenset[str], collector: _Collector, *, address: Optional[str], workers: Optional[int], cpus_per_worker: Optional[float], object_store_mb: int) -> None:
    ray = require_ray()
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(
                num_cpus=os.cpu_count(),
                object_store_memory=object_store_mb * 1024 * 1024,  # the default is 30% of RAM
                include_dashboard=False,
                log_to_driver=False,
            )
        started = True
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        n, share, threads = plan_cpus(ray.cluster_resources().get("CPU", 0), workers, cpus_per_worker)
        collector.summary.workers = n
        collector.summary.details.update(cpus_per_worker=share, torch_threads=threads)
        files = [str(p.resolve()) for p in scan.files]
        if scan.files[0].suffix == ".parquet":
            # One read task per row group, with pyarrow, rather than read_parquet: in Ray
            # 2.60 read_parquet's file indexer fails in a background thread and the job
            # hangs when fsspec is installed without aiohttp (ImportError from
            # fsspec.implementations.http, which Ray expects as ModuleNotFoundError).
            pieces = _parquet_pieces(files)
            ds = ray.data.from_items(pieces, override_num_blocks=len(pieces)).map_batches(
                _ParquetPieceReader(options.id_field, options.text_field), batch_size=1, batch_format="pyarrow", num_cpus=READ_TASK_CPUS
            )
        else:
            ds = ray.data.read_json(files, file_extensions=None, num_cpus=READ_TASK_CPUS)
        ds = ds.map_batches(
            CorpusAnnotator,
            fn_constructor_kwargs=dict(
                model=options.model, text_field=options.text_field, id_field=options.id_field,
                doc_bytes=options.annotator_doc_bytes, batch_size=options.batch_size,
                torch_threads=threads, skip_ids=skip,
            ),
            batch_size=options.batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=n),
            num_cpus=share,
        )
        for table in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            collector.add(table)
    finally:
        if started:
            ray.shutdown()


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
