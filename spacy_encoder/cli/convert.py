"""`spacy-encoder convert ...`: raw corpora -> spaCy `.spacy` DocBins, and text for
`spacy pretrain`.

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
from . import group, step

Limit = Annotated[Optional[int], typer.Option("--limit", min=1, help="Keep only the first N docs/examples (tiny test slices).")]


@contextmanager
def fail_cleanly() -> Iterator[None]:
    """Bad data and missing files are the user's to fix: say what and where, exit 1."""
    try:
        yield
    except (CorpusError, OSError, ValueError) as err:
        msg.fail(str(err))
        raise typer.Exit(1) from None


@group("convert").command("conll")
def convert_conll(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="CoNLL NER column file (word [POS chunk] TAG), e.g. CoNLL-2003 eng.train.")],
    output_path: Annotated[Path, typer.Argument(metavar="OUTPUT", help="Output .spacy file.")],
    scheme: Annotated[Scheme, typer.Option("--scheme", help="Tag scheme to validate against (all decode the same way).")] = Scheme.iob1,
    n_sents: Annotated[int, typer.Option("--n-sents", min=0, help="Sentences per doc, only for files without -DOCSTART- lines (0: one doc).")] = 10,
    limit: Limit = None,
) -> None:
    """Convert a CoNLL NER file: one Doc per -DOCSTART- document, sentence starts set."""
    from .. import corpora

    with fail_cleanly(), step(f"Converting {input_path} ..."):
        docs = corpora.read_conll(input_path, scheme, limit=limit, n_sents=n_sents)
        corpora.write_docbin(docs, output_path)
    msg.good(f"{output_path}: {corpora.summarize(docs)}")


@group("convert").command("wikigold")
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

    with fail_cleanly(), step(f"Converting {input_path} ..."):
        docs = corpora.read_wikigold(input_path, limit=limit)
        splits = corpora.split_by_document(docs, dev_docs, test_docs, seed)
        for name, split in splits.items():
            corpora.write_docbin(split, output_dir / f"{name}.spacy")
    sizes = ", ".join(f"{name} {len(split)}" for name, split in splits.items())
    msg.good(f"{output_dir}: {corpora.summarize(docs)}; split by article: {sizes}")


@group("convert").command("sst2")
def convert_sst2(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="GLUE SST-2 train.tsv or dev.tsv (header sentence<TAB>label).")],
    output_path: Annotated[Path, typer.Argument(metavar="OUTPUT", help="Output .spacy file.")],
    limit: Limit = None,
) -> None:
    """Convert SST-2 to exclusive textcat cats POSITIVE / NEGATIVE."""
    from .. import corpora

    with fail_cleanly(), step(f"Converting {input_path} ..."):
        docs = corpora.read_sst2(input_path, limit=limit)
        corpora.write_docbin(docs, output_path)
    msg.good(f"{output_path}: {corpora.summarize(docs)}")


@group("convert").command("goemotions")
def convert_goemotions(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="GoEmotions train/dev/test.tsv (text<TAB>label ids<TAB>comment id).")],
    output_path: Annotated[Path, typer.Argument(metavar="OUTPUT", help="Output .spacy file.")],
    labels_path: Annotated[Path, typer.Option("--labels", help="emotions.txt: label names, line i = id i.")],
    view: Annotated[GoEmotionsView, typer.Option("--view", help="multilabel: 28 labels; sentiment: 4 exclusive groups.")] = GoEmotionsView.multilabel,
    limit: Limit = None,
) -> None:
    """Convert GoEmotions to textcat cats (multi-label emotions, or exclusive sentiment)."""
    from .. import corpora

    with fail_cleanly(), step(f"Converting {input_path} ..."):
        docs, dropped = corpora.read_goemotions(input_path, labels_path, view, limit=limit)
        corpora.write_docbin(docs, output_path)
    if view is GoEmotionsView.sentiment:
        msg.info(f"Dropped {dropped:,} examples whose labels span more than one sentiment group")
    msg.good(f"{output_path}: {corpora.summarize(docs)}")


@group("convert").command("raw-text")
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

    with fail_cleanly():
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


@group("convert").command("wiki-text")
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

    with fail_cleanly():
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
