"""Records in and rows out: the input files, scanning and checking their records (JSONL
or Parquet), the output schema, shards written atomically into the staging folder, and
reading an output back."""
from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .errors import AnnotateError

EXTENSIONS = {"parquet": ".parquet", "jsonl": ".jsonl", "docbin": ".spacy"}
JSON_SUFFIXES = (".jsonl", ".json")
INPUT_SUFFIXES = JSON_SUFFIXES + (".parquet",)
STAGING_SUFFIX = ".staging"


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


# --- output -------------------------------------------------------------------------


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
