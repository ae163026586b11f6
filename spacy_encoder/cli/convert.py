"""Corpus conversion commands: raw corpora -> spaCy `.spacy` DocBins.

The work is done by `spacy_encoder.corpora`; these commands only parse options,
print a one-line summary, and turn input problems into a readable error and
exit code 1 instead of a traceback.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from wasabi import msg

from ..corpus_types import CorpusError, GoEmotionsView, Scheme
from . import app

Limit = Annotated[Optional[int], typer.Option("--limit", min=1, help="Keep only the first N docs/examples (tiny test slices).")]


@contextmanager
def _fail_cleanly() -> Iterator[None]:
    """Bad data and missing files are the user's to fix: say what and where, exit 1."""
    try:
        yield
    except (CorpusError, OSError, ValueError) as err:
        msg.fail(str(err))
        raise typer.Exit(1) from None


@app.command("convert-conll")
def convert_conll(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="CoNLL NER column file (word [POS chunk] TAG), e.g. CoNLL-2003 eng.train.")],
    output_path: Annotated[Path, typer.Argument(metavar="OUTPUT", help="Output .spacy file.")],
    scheme: Annotated[Scheme, typer.Option("--scheme", help="Tag scheme to validate against (all decode the same way).")] = Scheme.iob1,
    n_sents: Annotated[int, typer.Option("--n-sents", min=0, help="Sentences per doc, only for files without -DOCSTART- lines (0: one doc).")] = 10,
    limit: Limit = None,
) -> None:
    """Convert a CoNLL NER file: one Doc per -DOCSTART- document, sentence starts set."""
    from .. import corpora

    with _fail_cleanly(), msg.loading(f"Converting {input_path} ..."):
        docs = corpora.read_conll(input_path, scheme, limit=limit, n_sents=n_sents)
        corpora.write_docbin(docs, output_path)
    msg.good(f"{output_path}: {corpora.summarize(docs)}")


@app.command("convert-wikigold")
def convert_wikigold(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="wikigold.conll.txt (IO tags, -DOCSTART- at the end of each article).")],
    output_dir: Annotated[Path, typer.Argument(metavar="OUTPUT_DIR", help="Folder for train.spacy, dev.spacy, test.spacy.")],
    dev_docs: Annotated[Optional[int], typer.Option("--dev-docs", min=0, help="Articles for dev (default: 15 %).")] = None,
    test_docs: Annotated[Optional[int], typer.Option("--test-docs", min=0, help="Articles for test (default: 15 %).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the document shuffle.")] = 0,
    limit: Limit = None,
) -> None:
    """Convert WikiGold and split it by article into train/dev/test (it has no official split)."""
    from .. import corpora

    with _fail_cleanly(), msg.loading(f"Converting {input_path} ..."):
        docs = corpora.read_wikigold(input_path, limit=limit)
        splits = corpora.split_by_document(docs, dev_docs, test_docs, seed)
        for name, split in splits.items():
            corpora.write_docbin(split, output_dir / f"{name}.spacy")
    sizes = ", ".join(f"{name} {len(split)}" for name, split in splits.items())
    msg.good(f"{output_dir}: {corpora.summarize(docs)}; split by article: {sizes}")


@app.command("convert-sst2")
def convert_sst2(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="GLUE SST-2 train.tsv or dev.tsv (header sentence<TAB>label).")],
    output_path: Annotated[Path, typer.Argument(metavar="OUTPUT", help="Output .spacy file.")],
    limit: Limit = None,
) -> None:
    """Convert SST-2 to exclusive textcat cats POSITIVE / NEGATIVE."""
    from .. import corpora

    with _fail_cleanly(), msg.loading(f"Converting {input_path} ..."):
        docs = corpora.read_sst2(input_path, limit=limit)
        corpora.write_docbin(docs, output_path)
    msg.good(f"{output_path}: {corpora.summarize(docs)}")


@app.command("convert-goemotions")
def convert_goemotions(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="GoEmotions train/dev/test.tsv (text<TAB>label ids<TAB>comment id).")],
    output_path: Annotated[Path, typer.Argument(metavar="OUTPUT", help="Output .spacy file.")],
    labels_path: Annotated[Path, typer.Option("--labels", help="emotions.txt: label names, line i = id i.")],
    view: Annotated[GoEmotionsView, typer.Option("--view", help="multilabel: 28 labels; sentiment: 4 exclusive groups.")] = GoEmotionsView.multilabel,
    limit: Limit = None,
) -> None:
    """Convert GoEmotions to textcat cats (multi-label emotions, or exclusive sentiment)."""
    from .. import corpora

    with _fail_cleanly(), msg.loading(f"Converting {input_path} ..."):
        docs, dropped = corpora.read_goemotions(input_path, labels_path, view, limit=limit)
        corpora.write_docbin(docs, output_path)
    if view is GoEmotionsView.sentiment:
        msg.info(f"Dropped {dropped:,} examples whose labels span more than one sentiment group")
    msg.good(f"{output_path}: {corpora.summarize(docs)}")


@app.command("raw-text")
def raw_text(
    input_paths: Annotated[list[Path], typer.Argument(metavar="INPUT", help="Converted .spacy files whose text to use.")],
    output_path: Annotated[Path, typer.Option("--output", "-o", help="JSONL file for `spacy pretrain --paths.raw_text`.")],
    max_words: Annotated[int, typer.Option("--max-words", min=1, help="Cut longer docs between sentences (the pretraining reader skips texts over 500 words).")] = 400,
) -> None:
    """Write the text of converted corpora as `{"text": ...}` lines for `spacy pretrain`
    (annotations are dropped: use training files, never the test set)."""
    import spacy
    import srsly

    from .. import corpora

    with _fail_cleanly():
        nlp = spacy.blank("en")
        texts: list[str] = []
        for path in input_paths:
            if not path.exists():
                raise FileNotFoundError(f"{path}: no such file")
            docs = corpora.read_docbin(path, nlp.vocab)
            texts.extend(corpora.raw_texts(docs, max_words))
        output_path.parent.mkdir(parents=True, exist_ok=True)
        srsly.write_jsonl(output_path, ({"text": text} for text in texts))
    n_words = sum(len(text.split()) for text in texts)
    msg.good(f"{output_path}: {len(texts):,} texts, {n_words:,} words")


@app.command("wiki-text")
def wiki_text(
    input_dir: Annotated[Path, typer.Argument(metavar="INPUT_DIR", help="WikiExtractor output folder (AA/wiki_00, ...), e.g. ../shared/corpora/wikipedia.")],
    output_path: Annotated[Path, typer.Option("--output", "-o", help="JSONL file for `spacy pretrain --paths.raw_text`.")],
    limit_words: Annotated[Optional[int], typer.Option("--limit-words", min=1, help="Stop after this many words (default: all the text).")] = None,
    slice_: Annotated[int, typer.Option("--slice", min=0, help="With --limit-words N: skip the texts that hold the first K*N words (slice K of the text, for a longer pretraining later).")] = 0,
    min_words: Annotated[int, typer.Option("--min-words", min=1, help="Drop shorter lines (section headings).")] = 5,
    max_words: Annotated[int, typer.Option("--max-words", min=1, help="Cut longer paragraphs between sentences (the pretraining reader skips texts over 500 words).")] = 400,
) -> None:
    """Write Wikipedia paragraphs as `{"text": ...}` lines for `spacy pretrain`, streaming.

    Markup lines (`<doc ...>`, `</doc>`, the title line) are dropped and each paragraph
    is one text. The output appears only when complete (it is written next to OUTPUT
    first), and the input files are only read."""
    import srsly
    from tqdm import tqdm

    from .. import corpora

    with _fail_cleanly():
        files = corpora.wikiextractor_files(input_dir)
        output_path.parent.mkdir(parents=True, exist_ok=True)
        staging = output_path.with_name(output_path.name + ".partial")
        if slice_ and limit_words is None:
            raise ValueError("--slice needs --limit-words (the size of a slice)")
        skip_words = slice_ * (limit_words or 0)
        n_texts = n_words = n_files = skipped = 0
        bar = tqdm(total=limit_words, unit=" words", unit_scale=True, desc="wiki-text", disable=None)
        try:
            with staging.open("w", encoding="utf-8") as out:
                for path in files:
                    n_files += 1
                    for text in corpora.wikiextractor_paragraphs(path, min_words, max_words):
                        words = len(text.split())
                        if skipped < skip_words:
                            skipped += words
                            continue
                        out.write(srsly.json_dumps({"text": text}) + "\n")
                        n_texts += 1
                        n_words += words
                        bar.update(words)
                        if limit_words is not None and n_words >= limit_words:
                            break
                    if limit_words is not None and n_words >= limit_words:
                        break
        except BaseException:
            staging.unlink(missing_ok=True)
            raise
        finally:
            bar.close()
        staging.replace(output_path)
    skip_note = f" after skipping {skipped:,} words" if skip_words else ""
    msg.good(f"{output_path}: {n_texts:,} texts, {n_words:,} words{skip_note} from {n_files} of {len(files)} files")


@app.command("case-vectors")
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

    with _fail_cleanly():
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


@app.command("concat-vectors")
def concat_vectors(
    input_dirs: Annotated[list[Path], typer.Argument(metavar="INPUT_DIR...", help="Two or more pipelines with vectors (`spacy init vectors` output, en_core_web_md, a `case-vectors` copy).")],
    output_dir: Annotated[Path, typer.Option("--output", "-o", help="Where to save the pipeline with the concatenated table.")],
) -> None:
    """Concatenate vector tables: each key's row is its rows in every input side by
    side (zeros where an input lacks it), over the union of the keys; set the config's
    vectors_width to the sum of the widths. The first input's language and settings
    are kept."""
    import spacy
    from spacy.vectors import Vectors

    from ..static_vectors import concat_tables

    with _fail_cleanly():
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


@app.command("vector-coverage")
def vector_coverage(
    train_path: Annotated[Path, typer.Argument(metavar="TRAIN", help="The training corpus (.spacy) that defines which names were seen.")],
    test_path: Annotated[Path, typer.Argument(metavar="TEST", help="The corpus (.spacy) whose tokens are looked up.")],
    vectors: Annotated[list[str], typer.Argument(metavar="VECTORS...", help="Pipelines with vectors (folders or package names).")],
) -> None:
    """Which tokens a vectors table reaches: the share of TEST's tokens, and of the
    tokens of its names seen / unseen in TRAIN (as `unseen-entities` counts them), that
    have a vector, looked up by the table's key attribute as the encoder and spaCy's
    StaticVectors do. Prints a markdown table, one row per VECTORS."""
    import spacy

    from .. import corpora
    from ..inspect.evaluation import entity_names
    from ..static_vectors import vector_coverage as coverage

    with _fail_cleanly():
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
