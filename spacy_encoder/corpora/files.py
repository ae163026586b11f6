"""Reading input files line by line, and writing and reading DocBins: what every
corpus reader shares. Problems are `CorpusError`s located as `path:line:`."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import spacy
from spacy.tokens import Doc, DocBin

from ..corpus_types import CorpusError


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield `(1-based line number, text)` with the line ending (LF or CRLF) removed.

    Decoding line by line (not the whole file) is what lets a bad byte be reported
    with its line. A UTF-8 BOM on the first line is dropped.
    """
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise CorpusError(
                    path, number, f"not valid UTF-8 ({err.reason}, byte {raw[err.start]:#04x})"
                ) from None
            if number == 1:
                line = line.removeprefix("\ufeff")
            yield number, line.removesuffix("\n").removesuffix("\r")


def _lines_of_nonempty_file(path: Path) -> Iterator[tuple[int, str]]:
    """Like `_lines`, but an empty file is an error rather than an empty corpus."""
    empty = True
    for item in _lines(path):
        empty = False
        yield item
    if empty:
        raise CorpusError(path, 1, "file is empty")


def write_docbin(docs: Iterable[Doc], path: Path) -> Path:
    """Write Docs as a `.spacy` DocBin (creating the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    DocBin(docs=docs).to_disk(path)
    return path


class DocBinError(CorpusError):
    """A `.spacy` file that is not a DocBin, as `path: what is wrong` (it has no lines)."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(path, 0, problem)


def read_docbin(path: Path, vocab: spacy.Vocab) -> Iterator[Doc]:
    """The Docs of a `.spacy` DocBin. A file that is not one (cut short, emptied, or
    another file) raises a `DocBinError` naming it: spaCy's own error (E1014, or a
    KeyError or TypeError from inside the data) does not say which file. Missing or
    unreadable files raise the OSError of opening them, which names the file."""
    path = Path(path)
    try:
        doc_bin = DocBin().from_disk(path)
    except OSError:
        raise
    except Exception as err:
        raise _not_a_docbin(path, err) from None

    def docs() -> Iterator[Doc]:
        stream = doc_bin.get_docs(vocab)
        while True:
            try:
                doc = next(stream)
            except StopIteration:
                return
            except Exception as err:
                raise _not_a_docbin(path, err) from None
            yield doc

    return docs()


def _not_a_docbin(path: Path, err: Exception) -> DocBinError:
    import zlib

    data = path.read_bytes()
    if not data:
        why = "the file is empty"
    else:
        try:
            zlib.decompress(data)
        except zlib.error as zlib_error:
            if "incomplete or truncated" in str(zlib_error):
                why = f"the file is cut short (its data stops after {len(data):,} bytes)"
            else:
                why = "its bytes are not zlib-compressed msgpack"
        else:
            text = str(err).splitlines()[0] if str(err) else ""
            why = f"its data does not hold Docs ({type(err).__name__}: {text[:200]})"
    return DocBinError(path, f"not a DocBin written by spaCy: {why}")


def summarize(docs: list[Doc]) -> str:
    """One line of counts for a converted corpus: docs, tokens, then entities by
    type (NER) or positive examples per label (textcat)."""
    n_tokens = sum(len(doc) for doc in docs)
    parts = [f"{len(docs):,} docs", f"{n_tokens:,} tokens"]
    if docs and all(doc.has_annotation("SENT_START") for doc in docs):
        parts.append(f"{sum(len(list(doc.sents)) for doc in docs):,} sentences")
    entities = Counter(ent.label_ for doc in docs for ent in doc.ents)
    if entities or any(doc.has_annotation("ENT_IOB") for doc in docs):
        by_type = ", ".join(f"{label} {count:,}" for label, count in sorted(entities.items()))
        parts.append(f"{sum(entities.values()):,} entities ({by_type})")
    if any(doc.cats for doc in docs):
        labels = Counter(label for doc in docs for label, value in doc.cats.items() if value >= 0.5)
        order = list(docs[0].cats)  # label-file order, not alphabetical
        parts.append("labels: " + ", ".join(f"{label} {labels[label]:,}" for label in order))
    return "; ".join(parts)
