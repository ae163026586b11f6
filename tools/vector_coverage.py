"""Which tokens a vectors table reaches: the share of test tokens, and of the tokens of
test names seen / unseen in training, that have a vector, looked up as the encoder and
spaCy's StaticVectors do (the table's key attribute, ORTH by default).

    python tools/vector_coverage.py corpus/conll2003/train.spacy corpus/conll2003/test.spacy \\
        ../shared/vectors/en_core_web_md vectors/glove50 vectors/glove50-cased
"""
import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train", type=Path, help="training .spacy file (defines seen names)")
    parser.add_argument("test", type=Path, help="test .spacy file")
    parser.add_argument("vectors", type=Path, nargs="+", help="pipelines with vectors")
    args = parser.parse_args()

    import spacy
    from spacy.attrs import ORTH

    from spacy_encoder.corpora import read_docbin
    from spacy_encoder.inspect import entity_names

    nlp = spacy.blank("en")
    seen = entity_names(list(read_docbin(args.train, nlp.vocab)))  # as `spacy-encoder unseen-entities`
    test = list(read_docbin(args.test, nlp.vocab))
    groups = {
        "all test tokens": [t for doc in test for t in doc],
        "tokens of seen names": [t for doc in test for ent in doc.ents if ent.text in seen for t in ent],
        "tokens of unseen names": [t for doc in test for ent in doc.ents if ent.text not in seen for t in ent],
    }
    print("| vectors | rows | keys | " + " | ".join(f"{g} ({len(ts):,})" for g, ts in groups.items()) + " |")
    print("|---" * (3 + len(groups)) + "|")
    for path in args.vectors:
        table = spacy.load(path).vocab.vectors
        attr = getattr(table, "attr", ORTH)
        keys = {id(doc): doc.to_array(attr) for doc in test}  # the lookup's key per token
        shares = []
        for tokens in groups.values():
            found = sum(table.find(key=int(keys[id(t.doc)][t.i])) >= 0 for t in tokens)
            shares.append(f"{100 * found / max(len(tokens), 1):.1f}%")
        print(f"| {path} | {table.shape[0]:,} | {len(table.key2row):,} | " + " | ".join(shares) + " |")


if __name__ == "__main__":
    main()
