"""`spacy-encoder vectors ...`: static vectors made ready for the encoder (and for
spaCy's CNN): cased keys for lowercased tables, tables side by side, and which tokens
of a corpus a table reaches."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from wasabi import msg

from . import group
from .convert import fail_cleanly


@group("vectors").command("case")
def case_vectors(
    input_dir: Annotated[Path, typer.Argument(metavar="INPUT_DIR", help="A pipeline with lowercased vectors, e.g. written by `spacy init vectors` from GloVe.")],
    output_dir: Annotated[Path, typer.Argument(metavar="OUTPUT_DIR", help="Where to save the pipeline with the cased keys added.")],
) -> None:
    """Make lowercased vectors (GloVe) reachable from cased tokens: "Berlin" and "BERLIN"
    get the row of "berlin", as in en_core_web_md. No rows are added. Needed because
    `spacy init vectors --attr LOWER` does not keep LOWER for default-mode tables, so
    the saved vectors are looked up by ORTH."""
    import spacy

    from ..static_vectors import add_case_keys

    with fail_cleanly():
        if not (input_dir / "config.cfg").exists():
            raise FileNotFoundError(f"{input_dir}: no pipeline there (no config.cfg); write one with `spacy init vectors`")
        nlp = spacy.load(input_dir)
        try:
            counts = add_case_keys(nlp.vocab.vectors, nlp.vocab.strings)
        except ValueError as err:
            raise ValueError(f"{input_dir}: {err}") from None
        nlp.to_disk(output_dir)
    msg.good(
        f"{output_dir}: {counts['keys']:,} keys + {counts['added']:,} cased forms, "
        f"{counts['rows']:,} rows (unchanged)"
    )


@group("vectors").command("concat")
def concat_vectors(
    input_dirs: Annotated[list[Path], typer.Argument(metavar="INPUT_DIR...", help="Two or more pipelines with vectors (`spacy init vectors` output, en_core_web_md, a `vectors case` copy).")],
    output_dir: Annotated[Path, typer.Option("--output", "-o", help="Where to save the pipeline with the concatenated table.")],
) -> None:
    """Concatenate vector tables: each key's row is its rows in every input side by
    side (zeros where an input lacks it), over the union of the keys; set the config's
    vectors_width to the sum of the widths. The first input's language and settings
    are kept."""
    import spacy
    from spacy.vectors import Vectors

    from ..static_vectors import concat_tables

    with fail_cleanly():
        pipelines = []
        for input_dir in input_dirs:
            if not (input_dir / "config.cfg").exists():
                raise FileNotFoundError(f"{input_dir}: no pipeline there (no config.cfg); write one with `spacy init vectors`")
            nlp = spacy.load(input_dir)
            if not len(nlp.vocab.vectors.key2row):
                raise ValueError(f"{input_dir}: the pipeline has no vectors")
            pipelines.append(nlp)
        try:
            data, rows, words = concat_tables([(p.vocab.vectors, p.vocab.strings) for p in pipelines])
        except ValueError as err:
            raise ValueError(f"{' + '.join(map(str, input_dirs))}: {err}") from None
        widths = " + ".join(str(p.vocab.vectors.shape[1]) for p in pipelines)
        out = pipelines[0]
        vectors = Vectors(strings=out.vocab.strings, data=data, name=f"{out.meta.get('name', 'vectors')}_concat")
        for word, row in zip(words, rows):
            vectors.add(out.vocab.strings.add(word), row=row)
        out.vocab.vectors = vectors
        out.to_disk(output_dir)
    msg.good(f"{output_dir}: {len(words):,} keys on {data.shape[0]:,} rows of {data.shape[1]} ({widths}) floats")


@group("vectors").command("coverage")
def vector_coverage(
    train_path: Annotated[Path, typer.Argument(metavar="TRAIN", help="The training corpus (.spacy) that defines which names were seen.")],
    test_path: Annotated[Path, typer.Argument(metavar="TEST", help="The corpus (.spacy) whose tokens are looked up.")],
    vectors: Annotated[list[str], typer.Argument(metavar="VECTORS...", help="Pipelines with vectors (folders or package names).")],
) -> None:
    """Which tokens a vectors table reaches: the share of TEST's tokens, and of the
    tokens of its names seen / unseen in TRAIN (as `inspect unseen` counts them), that
    have a vector, looked up by the table's key attribute as the encoder and spaCy's
    StaticVectors do. Prints a markdown table, one row per VECTORS."""
    import spacy

    from .. import corpora
    from ..inspect.evaluation import entity_names
    from ..static_vectors import vector_coverage as coverage

    with fail_cleanly():
        nlp = spacy.blank("en")
        seen = entity_names(list(corpora.read_docbin(train_path, nlp.vocab)))
        test = list(corpora.read_docbin(test_path, nlp.vocab))
        rows = []
        for path in vectors:
            table = spacy.load(path).vocab.vectors
            rows.append((path, table, coverage(table, test, seen)))
    groups = {group: n for group, (n, _) in rows[0][2].items()}
    print("| vectors | rows | keys | " + " | ".join(f"{g} ({n:,})" for g, n in groups.items()) + " |")
    print("|---" * (3 + len(groups)) + "|")
    for path, table, shares in rows:
        cells = " | ".join(f"{100 * share:.1f}%" for _, share in shares.values())
        print(f"| {path} | {table.shape[0]:,} | {len(table.key2row):,} | {cells} |")
