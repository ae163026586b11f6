"""Read the project's raw corpora into spaCy `Doc`s and write them as DocBins.

Everything here is plain functions (`ner`, `textcat`, `raw_text`, and `files` for
what they share) with no printing, so the CLI (`cli/convert.py`)
and the tests share one code path. Every problem in an input file is raised as a
`CorpusError` whose message starts with `path:line:`, because the corpora come from
third-party copies with known quirks (see `corpus/README.md` and each `SOURCE.md`),
and a silent mis-read would only show up later as a bad score.
"""
from __future__ import annotations

from ..corpus_types import CorpusError, GoEmotionsView, Scheme
from .files import DocBinError, read_docbin, summarize, write_docbin
from .ner import read_conll, read_wikigold, split_by_document
from .raw_text import raw_texts, wikiextractor_files, wikiextractor_paragraphs
from .textcat import SENTIMENT_GROUPS, read_goemotions, read_labels, read_sst2

__all__ = [
    "CorpusError",
    "Scheme",
    "GoEmotionsView",
    "SENTIMENT_GROUPS",
    "read_conll",
    "read_wikigold",
    "split_by_document",
    "read_sst2",
    "read_goemotions",
    "read_labels",
    "write_docbin",
    "read_docbin",
    "DocBinError",
    "summarize",
    "raw_texts",
    "wikiextractor_files",
    "wikiextractor_paragraphs",
]
