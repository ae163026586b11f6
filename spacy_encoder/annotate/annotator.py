"""`CorpusAnnotator`: a batch of records in, a pyarrow Table of rows out; the one piece
of annotation both engines run (and that users may give to their own Ray Data job)."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Optional

from .records import _check_id, _check_text, _schema


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
