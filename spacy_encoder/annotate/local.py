"""The local engine, the reference: `nlp.pipe` in this process."""
from __future__ import annotations

import os
from collections.abc import Iterator

from .annotator import CorpusAnnotator
from .collector import _Collector, _Options
from .records import InputScan, iter_records


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
