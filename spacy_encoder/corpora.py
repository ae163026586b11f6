"""Read the project's raw corpora into spaCy `Doc`s and write them as DocBins.

Everything here is plain functions with no printing, so the CLI (`cli/convert.py`)
and the tests share one code path. Every problem in an input file is raised as a
`CorpusError` whose message starts with `path:line:`, because the corpora come from
third-party copies with known quirks (see `corpus/README.md` and each `SOURCE.md`),
and a silent mis-read would only show up later as a bad score.
"""
from __future__ import annotations

import csv
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import spacy
from spacy.tokens import Doc, DocBin
from spacy.training.converters import conll_ner_to_docs

from .corpus_types import CorpusError, GoEmotionsView, Scheme

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
    "wikiextractor_files",
    "wikiextractor_paragraphs",
]


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

_TAG = re.compile(r"^(O|[BI]-\S+)$")
_DOCSTART = "-DOCSTART-"
# The one delimiter spaCy's converter recognises (CoNLL-03 test and WikiGold differ).
_SPACY_DOCSTART = "-DOCSTART- -X- O O"

# A CoNLL token: (line number, columns). Sentences and documents are lists of them.
_Token = tuple[int, list[str]]
_Sentence = list[_Token]
_Document = list[_Sentence]


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


# ---------------------------------------------------------------------------------
# CoNLL column files (CoNLL-2003, WikiGold)
# ---------------------------------------------------------------------------------


def _parse_conll(path: Path, scheme: Scheme) -> list[_Document]:
    """Validate a column file and group it into documents of sentences.

    `-DOCSTART-` lines only mark document boundaries: whether they open documents
    (CoNLL-03) or close them (WikiGold), splitting at them and dropping empty groups
    gives the same documents.
    """
    docs: list[_Document] = [[]]
    sentence: _Sentence = []
    n_columns: tuple[int, int] | None = None  # (count, line it was first seen on)
    previous = "O"

    def end_sentence() -> None:
        nonlocal sentence, previous
        if sentence:
            docs[-1].append(sentence)
        sentence, previous = [], "O"

    for number, line in _lines_of_nonempty_file(path):
        columns = line.split()
        if not columns:
            end_sentence()
            continue
        if columns[0] == _DOCSTART:
            end_sentence()
            if docs[-1]:
                docs.append([])
            continue
        if len(columns) < 2:
            raise CorpusError(path, number, f"expected 'word ... TAG' (2+ space-separated columns), got {line!r}")
        if _DOCSTART in line:  # spaCy's converter would split the document inside this line
            raise CorpusError(path, number, f"'-DOCSTART-' inside a token line: {line!r}")
        if n_columns is None:
            n_columns = (len(columns), number)
        elif len(columns) != n_columns[0]:
            raise CorpusError(
                path, number,
                f"{len(columns)} columns, but line {n_columns[1]} has {n_columns[0]} (the NER tag must be the last column)",
            )
        tag = columns[-1]
        if not _TAG.match(tag):
            raise CorpusError(path, number, f"unknown NER tag {tag!r} (expected O, B-TYPE or I-TYPE)")
        if scheme is Scheme.io and tag.startswith("B-"):
            raise CorpusError(path, number, f"tag {tag!r} in an IO file (only I-TYPE and O allowed)")
        if scheme is Scheme.iob2 and tag.startswith("I-") and previous[2:] != tag[2:]:
            raise CorpusError(path, number, f"IOB2 entity starts with {tag!r} after {previous!r} (expected B-{tag[2:]})")
        previous = tag
        sentence.append((number, columns))
    end_sentence()
    docs = [doc for doc in docs if doc]
    if not docs:
        raise CorpusError(path, 1, "no tokens in file (only blank or -DOCSTART- lines)")
    return docs


def _group_sentences(docs: list[_Document], n_sents: int) -> list[_Document]:
    """Files without any `-DOCSTART-` come out as one huge document: cut it into
    documents of `n_sents` sentences (spaCy's `convert -n` default is 10)."""
    if len(docs) != 1 or n_sents <= 0:
        return docs
    sentences = docs[0]
    return [sentences[i : i + n_sents] for i in range(0, len(sentences), n_sents)]


def _count_entities(docs: list[_Document]) -> int:
    """Entities by IOB1 rules, to check that spaCy's converter built all of them."""
    count = 0
    for doc in docs:
        for sentence in doc:
            previous = "O"
            for _, columns in sentence:
                tag = columns[-1]
                if tag.startswith("B-") or (tag.startswith("I-") and previous[2:] != tag[2:]):
                    count += 1
                previous = tag
    return count


def read_conll(
    path: Path, scheme: Scheme = Scheme.iob1, limit: int | None = None, n_sents: int = 10
) -> list[Doc]:
    """Read a CoNLL NER column file (`word [POS chunk] TAG`) into one Doc per document.

    The file is validated here line by line, then re-written in the canonical form
    spaCy's own `conll_ner_to_docs` expects (its delimiter is exactly
    `-DOCSTART- -X- O O`, which CoNLL-03 test and WikiGold do not use), so the Docs
    are built by spaCy's converter: sentence starts set, POS column (if any) as
    `token.tag_`, entities from the last column. `limit` keeps the first N documents.
    """
    path = Path(path)
    documents = _parse_conll(path, Scheme(scheme))
    documents = _group_sentences(documents, n_sents)
    if limit is not None:
        documents = documents[:limit]
    text = "".join(
        f"{_SPACY_DOCSTART}\n\n"
        + "\n\n".join("\n".join(" ".join(columns) for _, columns in sent) for sent in doc)
        + "\n\n"
        for doc in documents
    )
    docs = list(conll_ner_to_docs(text, n_sents=0, no_print=True))
    has_pos = len(documents[0][0][0][1]) > 2 if documents else False
    if not has_pos:  # spaCy fills a missing POS column with "-": that is no annotation.
        for doc in docs:
            for token in doc:
                token.tag_ = ""
    # Spans come from token tags, so none can be misaligned; still make sure that
    # spaCy's converter kept every document and entity the tags describe.
    expected = _count_entities(documents)
    built = sum(len(doc.ents) for doc in docs)
    if len(docs) != len(documents) or built != expected:
        raise RuntimeError(
            f"{path}: spaCy built {len(docs)} docs / {built} entities, expected {len(documents)} / {expected}"
        )
    return docs


def read_wikigold(path: Path, limit: int | None = None) -> list[Doc]:
    """Read WikiGold (`word TAG`, IO tags, `-DOCSTART- O` at the END of each article).

    IO tags are decoded with IOB1 rules (adjacent same-type entities merge, as in
    the source). `limit` keeps the first N articles.
    """
    return read_conll(path, Scheme.io, limit=limit)


def split_by_document(
    docs: list[Doc], dev_docs: int | None = None, test_docs: int | None = None, seed: int = 0
) -> dict[str, list[Doc]]:
    """Split whole documents into train/dev/test (WikiGold has no official split).

    Splitting by document (not sentence) keeps an article's repeated names out of
    two splits. A seeded shuffle of the indices makes it reproducible; each split
    keeps the original document order. Defaults: 15 % dev, 15 % test.
    """
    n = len(docs)
    n_dev = round(0.15 * n) if dev_docs is None else dev_docs
    n_test = round(0.15 * n) if test_docs is None else test_docs
    if n_dev < 0 or n_test < 0 or n_dev + n_test >= n:
        raise ValueError(f"cannot take {n_dev} dev + {n_test} test documents from {n} and keep any for train")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    picks = {
        "dev": order[:n_dev],
        "test": order[n_dev : n_dev + n_test],
        "train": order[n_dev + n_test :],
    }
    return {name: [docs[i] for i in sorted(indices)] for name, indices in picks.items()}


# ---------------------------------------------------------------------------------
# Text classification (SST-2, GoEmotions)
# ---------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------
# Raw text for pretraining: WikiExtractor output (../shared/corpora/wikipedia)
# ---------------------------------------------------------------------------------

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
