"""The error and the choices of the corpus converters, apart from `corpora` so that the
CLI can name them in its options without importing spaCy (`spacy-encoder --help`
stays fast)."""
from __future__ import annotations

from enum import Enum
from pathlib import Path


class CorpusError(ValueError):
    """A problem in an input file, located as `path:line: what is wrong` (`path: what
    is wrong` for line 0: the file or folder as a whole)."""

    def __init__(self, path: Path | str, line: int, problem: str) -> None:
        super().__init__(f"{path}:{line}: {problem}" if line > 0 else f"{path}: {problem}")
        self.path = Path(path)
        self.line = line
        self.problem = problem


class Scheme(str, Enum):
    """NER tagging scheme of a column file; it only decides what is *valid*.

    All three decode the same way (spaCy's `iob_to_biluo`: `B-X` always starts an
    entity, `I-X` starts one after `O` or another type), so `iob1` also accepts IOB2
    files. `iob2` and `io` are stricter checks for files that claim those schemes.
    """

    iob1 = "iob1"
    iob2 = "iob2"
    io = "io"


class GoEmotionsView(str, Enum):
    """`multilabel`: the 28 GoEmotions labels; `sentiment`: 4 exclusive groups."""

    multilabel = "multilabel"
    sentiment = "sentiment"
