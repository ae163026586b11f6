"""Preparing static vector tables for the encoder (and for spaCy's CNN alike).

Lowercased vectors such as GloVe hold "berlin", never "Berlin". spaCy looks vectors up
by the table's key attribute, and `spacy init vectors --attr LOWER` does not keep that
attribute for default-mode tables (spaCy 3.8 saves `attr` in `vectors.cfg` for floret
tables only), so the saved table is read by ORTH and every capitalised token finds no
vector: on CoNLL-03 test, 73.1% of tokens and 1.9% of the tokens of names unseen in
training have a GloVe 6B vector by ORTH. `add_case_keys` maps the cased forms of each
lowercase key to the same row, as `en_core_web_md` does (684,830 keys onto 20,000
rows): no new rows, and 94.9% and 82.1% (`tools/vector_coverage.py`, RESULTS.md).
"""
from typing import Dict, Set

from spacy.strings import StringStore
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
