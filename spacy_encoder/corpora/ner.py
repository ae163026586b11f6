"""CoNLL column files (CoNLL-2003, WikiGold) as NER Docs, validated against their
tagging scheme, and a split of WikiGold by article."""
from __future__ import annotations

import random
import re
from pathlib import Path

from spacy.tokens import Doc
from spacy.training.converters import conll_ner_to_docs

from ..corpus_types import CorpusError, Scheme
from .files import _lines_of_nonempty_file

_TAG = re.compile(r"^(O|[BI]-\S+)$")
_DOCSTART = "-DOCSTART-"
# The one delimiter spaCy's converter recognises (CoNLL-03 test and WikiGold differ).
_SPACY_DOCSTART = "-DOCSTART- -X- O O"

# A CoNLL token: (line number, columns). Sentences and documents are lists of them.
_Token = tuple[int, list[str]]
_Sentence = list[_Token]
_Document = list[_Sentence]


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
