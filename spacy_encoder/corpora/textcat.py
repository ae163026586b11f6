"""Text classification corpora (SST-2, GoEmotions) as Docs with `doc.cats`."""
from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import spacy
from spacy.tokens import Doc

from ..corpus_types import CorpusError, GoEmotionsView
from .files import _lines_of_nonempty_file

# Sentiment grouping of Demszky et al. (2020), GoEmotions, Sec. 3 / sentiment_dict.json.
SENTIMENT_GROUPS: dict[str, tuple[str, ...]] = {
    "positive": (
        "amusement", "excitement", "joy", "love", "desire", "optimism", "caring",
        "pride", "admiration", "gratitude", "relief", "approval",
    ),
    "negative": (
        "fear", "nervousness", "remorse", "embarrassment", "disappointment", "sadness",
        "grief", "disgust", "anger", "annoyance", "disapproval",
    ),
    "ambiguous": ("realization", "surprise", "curiosity", "confusion"),
    "neutral": ("neutral",),
}


def read_sst2(path: Path, limit: int | None = None) -> list[Doc]:
    """Read GLUE SST-2 (`sentence<TAB>label` with a header) as exclusive textcat Docs.

    Texts end with a space before the tab in the GLUE files, so they are stripped.
    The test file (`index<TAB>sentence`) has no labels and is refused, because
    silently labelling it would give a meaningless evaluation.
    """
    path = Path(path)
    nlp = spacy.blank("en")
    lines = _lines_of_nonempty_file(path)
    _, header = next(lines)
    fields = [field.strip() for field in header.split("\t")]
    if fields == ["index", "sentence"]:
        raise CorpusError(path, 1, "unlabelled file (header 'index<TAB>sentence', e.g. GLUE test): it has no labels; use dev.tsv to evaluate")
    if fields != ["sentence", "label"]:
        raise CorpusError(path, 1, f"expected the header 'sentence<TAB>label', got {header!r}")
    docs: list[Doc] = []
    for number, line in lines:
        if limit is not None and len(docs) >= limit:
            break
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise CorpusError(path, number, f"expected 2 tab-separated fields (sentence, label), got {len(fields)}")
        text, label = fields[0].strip(), fields[1].strip()
        if label not in ("0", "1"):
            raise CorpusError(path, number, f"label must be 0 or 1, got {label!r}")
        if not text:
            raise CorpusError(path, number, "empty sentence")
        doc = nlp.make_doc(text)
        doc.cats = {"POSITIVE": float(label == "1"), "NEGATIVE": float(label == "0")}
        docs.append(doc)
    if not docs:
        raise CorpusError(path, 2, "no examples after the header")
    return docs


def read_labels(path: Path) -> list[str]:
    """Read a label list (one per line, line i = label id i), e.g. emotions.txt."""
    path = Path(path)
    labels: list[str] = []
    for number, line in _lines_of_nonempty_file(path):
        label = line.strip()
        if not label:
            continue
        if label in labels:
            raise CorpusError(path, number, f"duplicate label {label!r}")
        labels.append(label)
    if not labels:
        raise CorpusError(path, 1, "no labels in file")
    return labels


def _goemotions_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """CSV-aware rows of a GoEmotions TSV: texts with `"` are CSV-quoted, so a plain
    split would keep the quote characters. Yields (line number, fields)."""
    lines = (line + "\n" for _, line in _lines_of_nonempty_file(path))
    reader = csv.reader(lines, delimiter="\t")
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as err:
        raise CorpusError(path, reader.line_num, f"bad TSV row ({err})") from None


def read_goemotions(
    path: Path,
    labels_path: Path,
    view: GoEmotionsView = GoEmotionsView.multilabel,
    limit: int | None = None,
) -> tuple[list[Doc], int]:
    """Read GoEmotions (`text<TAB>label ids<TAB>comment id`, no header) into textcat Docs.

    `multilabel` sets all labels of `labels_path` as cats (1.0 / 0.0). `sentiment`
    maps each label to its group of `SENTIMENT_GROUPS` and keeps only examples whose
    labels all fall into one group (an exclusive single-label task); the others are
    dropped and counted. `limit` stops after N Docs. Returns (docs, dropped). The
    comment id is checked for presence but not kept: storing user data makes
    DocBin serialisation about 10x slower (a msgpack registry lookup per doc).
    """
    path, labels_path = Path(path), Path(labels_path)
    view = GoEmotionsView(view)
    labels = read_labels(labels_path)
    group_of = {label: group for group, members in SENTIMENT_GROUPS.items() for label in members}
    if view is GoEmotionsView.sentiment:
        unknown = [label for label in labels if label not in group_of]
        if unknown:
            raise CorpusError(labels_path, labels.index(unknown[0]) + 1, f"label {unknown[0]!r} has no sentiment group")
    nlp = spacy.blank("en")
    docs: list[Doc] = []
    dropped = 0
    for number, row in _goemotions_rows(path):
        if limit is not None and len(docs) >= limit:
            break
        if not row or row == [""]:
            continue
        if len(row) != 3:
            raise CorpusError(path, number, f"expected 3 tab-separated fields (text, label ids, comment id), got {len(row)}")
        text, ids, _comment_id = row
        if not ids.strip():
            raise CorpusError(path, number, "missing label ids")
        names = set()
        for label_id in ids.split(","):
            if not label_id.strip().isdecimal() or int(label_id) >= len(labels):
                raise CorpusError(
                    path, number, f"unknown label id {label_id!r} ({labels_path.name} has ids 0-{len(labels) - 1})"
                )
            names.add(labels[int(label_id)])
        if view is GoEmotionsView.multilabel:
            cats = {label: float(label in names) for label in labels}
        else:
            groups = {group_of[name] for name in names}
            if len(groups) != 1:
                dropped += 1
                continue
            cats = {group: float(group in groups) for group in SENTIMENT_GROUPS}
        doc = nlp.make_doc(text)
        doc.cats = cats
        docs.append(doc)
    if not docs and not dropped:
        raise CorpusError(path, 1, "no examples in file")
    return docs, dropped
