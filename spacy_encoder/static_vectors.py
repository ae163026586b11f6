"""Preparing static vector tables for the encoder (and for spaCy's CNN alike).

Lowercased vectors such as GloVe hold "berlin", never "Berlin". spaCy looks vectors up
by the table's key attribute, and `spacy init vectors --attr LOWER` does not keep that
attribute for default-mode tables (spaCy 3.8 saves `attr` in `vectors.cfg` for floret
tables only), so the saved table is read by ORTH and every capitalised token finds no
vector: on CoNLL-03 test, 73.1% of tokens and 1.9% of the tokens of names unseen in
training have a GloVe 6B vector by ORTH. `add_case_keys` maps the cased forms of each
lowercase key to the same row, as `en_core_web_md` does (684,830 keys onto 20,000
rows): no new rows, and 94.9% and 82.1% (`spacy-encoder vectors coverage`, docs/benchmarks.md).
"""
from typing import Collection, Dict, List, Sequence, Set, Tuple

import numpy

from spacy.attrs import ORTH
from spacy.strings import StringStore
from spacy.tokens import Doc
from spacy.vectors import Vectors


def case_forms(word: str) -> Set[str]:
    """The cased forms a lowercase `word` is looked up as: Title, Capitalized, UPPER."""
    return {word.title(), word.capitalize(), word.upper()} - {word}


def add_case_keys(vectors: Vectors, strings: StringStore) -> Dict[str, int]:
    """For every key of `vectors` whose string is lowercase, add its cased forms
    (`case_forms`) as keys of the same row, unless the table has them already (a
    cased vector of its own is kept). Changes `vectors` and `strings` in place.

    :return: counts: "keys" before, "added", "rows" (unchanged).
    """
    if vectors.mode != "default":
        raise ValueError(f"case keys need a default-mode vectors table, not {vectors.mode!r} (floret hashes subwords)")
    if not len(vectors.key2row):
        raise ValueError("the vectors table has no keys")
    before = len(vectors.key2row)
    added = 0
    for key, row in list(vectors.key2row.items()):
        word = strings[key]
        if word != word.lower():
            continue
        for form in sorted(case_forms(word)):
            form_key = strings.add(form)
            if form_key not in vectors.key2row:
                vectors.add(form_key, row=row)
                added += 1
    return {"keys": before, "added": added, "rows": vectors.shape[0]}


def concat_tables(tables: Sequence[Tuple[Vectors, StringStore]]) -> Tuple[numpy.ndarray, List[int], List[str]]:
    """One table whose row for a key is the concatenation of that key's rows in each of
    `tables` (zeros where a table lacks the key), over the union of their keys.

    Keys that share a row in every table share one row here too, so the result has one
    row per distinct combination, not per key (GloVe-cased + `en_core_web_md`: 742,236
    keys on 137,188 rows of 350 floats). Rows come in the order of their first key in
    sorted-string order, so the output does not depend on hash or dict order.

    :return: (data, row of each key, the key strings), for `Vectors(data=...)` +
        `Vectors.add(key, row=...)`.
    """
    if len(tables) < 2:
        raise ValueError("concatenating needs at least two vector tables")
    for i, (vectors, _) in enumerate(tables):
        if vectors.mode != "default":
            raise ValueError(f"table {i + 1}: concatenating needs default-mode vectors, not {vectors.mode!r}")
        if not len(vectors.key2row):
            raise ValueError(f"table {i + 1}: the vectors table has no keys")
    words: Set[str] = set()
    for i, (vectors, strings) in enumerate(tables):
        for key in vectors.key2row:
            if key not in strings:
                raise ValueError(f"table {i + 1}: key {key} has no string in the vocab, so it cannot be matched across tables")
            words.add(strings[key])
    combos: Dict[Tuple[int, ...], int] = {}
    key_rows: List[int] = []
    key_words = sorted(words)
    for word in key_words:
        combo = tuple(int(v.key2row.get(s[word], -1)) for v, s in tables)  # s[word]: the id (a symbol's is small)
        key_rows.append(combos.setdefault(combo, len(combos)))
    widths = [int(v.shape[1]) for v, _ in tables]
    data = numpy.zeros((len(combos), sum(widths)), dtype="float32")
    start = 0
    for column, ((vectors, _), width) in enumerate(zip(tables, widths)):
        table = numpy.asarray(vectors.data)  # a cupy table would need .get(); tables load on the CPU
        rows = numpy.array([combo[column] for combo in combos], dtype="int64")
        present = rows >= 0
        data[present, start : start + width] = table[rows[present]]
        start += width
    return data, key_rows, key_words


def vector_coverage(vectors: Vectors, docs: Sequence[Doc], seen: Collection[str]) -> Dict[str, Tuple[int, float]]:
    """Which tokens of `docs` have a row in `vectors`, looked up as the encoder and
    spaCy's StaticVectors do (by the table's key attribute, ORTH by default): for all
    tokens, the tokens of gold names in `seen` and those of the other names.

    :return: group -> (tokens, share that has a vector).
    """
    attr = getattr(vectors, "attr", ORTH)
    keys = {id(doc): doc.to_array(attr) for doc in docs}  # the lookup's key per token
    groups = {
        "all tokens": [t for doc in docs for t in doc],
        "tokens of seen names": [t for doc in docs for ent in doc.ents if ent.text in seen for t in ent],
        "tokens of unseen names": [t for doc in docs for ent in doc.ents if ent.text not in seen for t in ent],
    }
    coverage = {}
    for group, tokens in groups.items():
        found = sum(vectors.find(key=int(keys[id(t.doc)][t.i])) >= 0 for t in tokens)
        coverage[group] = (len(tokens), found / max(len(tokens), 1))
    return coverage
