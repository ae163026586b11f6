"""Raw text for `spacy pretrain`: converted docs cut to a word limit, and WikiExtractor
output (paragraphs of Wikipedia articles)."""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from spacy.tokens import Doc

from ..corpus_types import CorpusError
from .files import _lines

def raw_texts(docs: Iterable[Doc], max_words: int) -> Iterator[str]:
    """The text of each doc for `spacy pretrain` (its JSONL reader skips texts of more
    than `[corpora.pretrain] max_length` words): a longer doc is cut between sentences
    into pieces of at most `max_words` tokens, and a longer sentence into plain slices."""
    if max_words < 1:
        raise ValueError(f"max_words must be at least 1, not {max_words}")
    for doc in docs:
        if len(doc) <= max_words:
            if doc.text.strip():
                yield doc.text
            continue
        sents = list(doc.sents) if doc.has_annotation("SENT_START") else [doc[:]]
        start = end = 0
        for sent in sents:
            if sent.end - start > max_words and end > start:
                yield doc[start:end].text
                start = end
            while sent.end - start > max_words:
                yield doc[start : start + max_words].text
                start += max_words
            end = sent.end
        if end > start:
            yield doc[start:end].text


_DOC_OPEN = re.compile(r'^<doc\s[^>]*>$')
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def wikiextractor_files(folder: Path) -> list[Path]:
    """The text files of a WikiExtractor output folder (`AA/wiki_00`, ...), in order.

    Only files named `wiki_*` are read, so the copy's `SOURCE.md`, `SHA256SUMS` and
    `GIT_TREE.txt` next to them are never mistaken for text."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CorpusError(folder, 0, "no such folder (expected WikiExtractor output: AA/wiki_00, ...)")
    files = sorted(p for p in folder.rglob("wiki_*") if p.is_file())
    if not files:
        raise CorpusError(folder, 0, "no WikiExtractor files (wiki_*) in this folder")
    return files


def _chunks(paragraph: str, max_words: int) -> Iterator[str]:
    """A paragraph cut between sentences into pieces of at most `max_words`
    whitespace words (a longer sentence into plain slices)."""
    words = paragraph.split()
    if len(words) <= max_words:
        yield paragraph
        return
    piece: list[str] = []
    for sentence in _SENTENCE_END.split(paragraph):
        sent_words = sentence.split()
        if piece and len(piece) + len(sent_words) > max_words:
            yield " ".join(piece)
            piece = []
        while len(sent_words) > max_words:
            yield " ".join(sent_words[:max_words])
            sent_words = sent_words[max_words:]
        piece.extend(sent_words)
    if piece:
        yield " ".join(piece)


def wikiextractor_paragraphs(
    path: Path, min_words: int = 5, max_words: int = 400
) -> Iterator[str]:
    """Stream the paragraphs of one WikiExtractor file as pretraining texts.

    Markup is dropped: the `<doc ...>` and `</doc>` lines, and the title line that
    follows each `<doc>`. Lines of fewer than `min_words` words (section headings,
    list stubs) are dropped too; longer ones are cut by `_chunks` so that spaCy's
    pretraining reader, which skips texts over its `max_length`, keeps them. A line
    outside a `<doc>` element is an error: the file is not WikiExtractor output."""
    if min_words < 1 or max_words < min_words:
        raise ValueError(f"need 1 <= min_words <= max_words, not {min_words} and {max_words}")
    in_doc = title_next = False
    for number, line in _lines(path):
        stripped = line.strip()
        if _DOC_OPEN.match(stripped):
            if in_doc:
                raise CorpusError(path, number, "<doc> inside another <doc> (missing </doc>)")
            in_doc = title_next = True
            continue
        if stripped == "</doc>":
            if not in_doc:
                raise CorpusError(path, number, "</doc> without <doc>")
            in_doc = title_next = False
            continue
        if not stripped:
            continue
        if not in_doc:
            raise CorpusError(path, number, "text outside <doc>...</doc>; is this WikiExtractor output?")
        if title_next:
            title_next = False
            continue
        if len(stripped.split()) >= min_words:
            yield from _chunks(stripped, max_words)
    if in_doc:
        raise CorpusError(path, number, "file ends inside a <doc> (missing </doc>)")
