"""What both engines hand their rows to: `_Collector` (drop repeats, write full shards,
count, report progress) and the `Summary` it fills; `_Options`, the run's settings."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from .errors import AnnotateError
from .records import ShardWriter


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
