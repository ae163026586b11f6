"""Corpus conversion: real files (heads, and full where cheap), broken inputs, CLI.

CoNLL-2003 and SST-2 are research-only and never in the repository: their tests read
`../shared/corpora` next to the checkout and are skipped when it is absent.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import spacy
import srsly
from spacy.tokens import Doc
from typer.testing import CliRunner

from spacy_encoder import corpora
from spacy_encoder.cli import app
from spacy_encoder.corpora import CorpusError, GoEmotionsView, Scheme

CORPUS = Path(__file__).parents[1] / "corpus"
SHARED = (Path(__file__).parents[1] / ".." / "shared" / "corpora").resolve()
WIKIGOLD = CORPUS / "wikigold" / "wikigold.conll.txt"
GOEMOTIONS = CORPUS / "goemotions"
LABELS = GOEMOTIONS / "emotions.txt"


def shared(name: str, file: str) -> Path:
    path = SHARED / name / file
    if not path.exists():
        pytest.skip(f"{name} is research-only and not in the repository; {path} is absent")
    return path


def head(src: Path, n_lines: int, dst: Path) -> Path:
    """The first `n_lines` lines of a real file, byte for byte."""
    with src.open("rb") as f:
        dst.write_bytes(b"".join(line for _, line in zip(range(n_lines), f)))
    return dst


def n_entities(docs) -> int:
    return sum(len(doc.ents) for doc in docs)


# --- CoNLL-2003 -------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_conll_head(split: str, tmp_path: Path) -> None:
    docs = corpora.read_conll(head(shared("conll2003", f"{split}.txt"), 400, tmp_path / "head.txt"))
    assert len(docs) >= 1
    words = [t.text for doc in docs for t in doc]
    assert "-DOCSTART-" not in words and "-X-" not in words  # test has '-DOCSTART- -X- -X- O'
    assert all(doc.has_annotation("SENT_START") and doc.has_annotation("TAG") for doc in docs)
    assert {ent.label_ for doc in docs for ent in doc.ents} <= {"PER", "ORG", "LOC", "MISC"}
    assert n_entities(docs) > 10


def test_conll_test_full_counts() -> None:
    # Smallest split; odd -DOCSTART- line and no newline at the end of the file.
    docs = corpora.read_conll(shared("conll2003", "test.txt"))
    assert len(docs) == 231
    assert sum(len(doc) for doc in docs) == 46_435
    assert sum(len(list(doc.sents)) for doc in docs) == 3_453
    assert n_entities(docs) == 5_648
    assert docs[0][:3].text == "SOCCER - JAPAN"
    assert docs[-1][-1].text == "."  # the unterminated last line is kept


def test_conll_is_iob1_not_iob2(tmp_path: Path) -> None:
    path = head(shared("conll2003", "test.txt"), 30, tmp_path / "test-head.txt")
    # Line 5 is 'JAPAN NNP I-NP I-LOC': an IOB1 entity start, invalid in IOB2.
    with pytest.raises(CorpusError, match=r"test-head\.txt:5: IOB2 entity starts with 'I-LOC'"):
        corpora.read_conll(path, Scheme.iob2)


def test_conll_limit_and_grouping_without_docstart(tmp_path: Path) -> None:
    sentences = "".join(f"Word{i} NNP I-PER\nsaid VBD O\n\n" for i in range(25))
    path = tmp_path / "nodocstart.txt"
    path.write_text(sentences, encoding="utf-8")
    assert [len(list(d.sents)) for d in corpora.read_conll(path)] == [10, 10, 5]
    assert len(corpora.read_conll(path, n_sents=0)) == 1
    assert len(corpora.read_conll(path, limit=2)) == 2


def test_crlf_is_the_same_as_lf(tmp_path: Path) -> None:
    text = "-DOCSTART- -X- O O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\nGerman JJ I-NP I-MISC\n"
    lf, crlf = tmp_path / "lf.txt", tmp_path / "crlf.txt"
    lf.write_bytes(text.encode())
    crlf.write_bytes(text.replace("\n", "\r\n").encode())
    a, b = corpora.read_conll(lf), corpora.read_conll(crlf)
    assert [t.text for t in a[0]] == [t.text for t in b[0]] == ["EU", "rejects", "German"]
    assert [(e.text, e.label_) for e in b[0].ents] == [("EU", "ORG"), ("German", "MISC")]


# --- WikiGold ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def wikigold_docs():
    return corpora.read_wikigold(WIKIGOLD)


def test_wikigold_full_counts(wikigold_docs) -> None:
    docs = wikigold_docs
    assert len(docs) == 145
    assert sum(len(doc) for doc in docs) == 39_007
    assert sum(len(list(doc.sents)) for doc in docs) == 1_696
    assert n_entities(docs) == 3_558
    # -DOCSTART- closes each article: the first doc is the first article, not empty.
    assert docs[0].text.startswith("010 is the tenth album")
    assert not any(t.text == "-DOCSTART-" for doc in docs for t in doc)
    assert not any(doc.has_annotation("TAG") for doc in docs)  # no POS column: no fake "-" tags


def test_wikigold_split_is_deterministic_and_disjoint(wikigold_docs) -> None:
    splits = corpora.split_by_document(wikigold_docs, seed=0)
    assert {k: len(v) for k, v in splits.items()} == {"dev": 22, "test": 22, "train": 101}
    ids = {name: {id(doc) for doc in split} for name, split in splits.items()}
    assert not (ids["train"] & ids["dev"] or ids["train"] & ids["test"] or ids["dev"] & ids["test"])
    assert set.union(*ids.values()) == {id(doc) for doc in wikigold_docs}
    again = corpora.split_by_document(wikigold_docs, seed=0)
    assert all([id(d) for d in again[k]] == [id(d) for d in splits[k]] for k in splits)
    other = corpora.split_by_document(wikigold_docs, seed=1)
    assert [id(d) for d in other["test"]] != [id(d) for d in splits["test"]]
    n = sum(len(doc.ents) for split in splits.values() for doc in split)
    assert n == 3_558


def test_wikigold_head(tmp_path: Path) -> None:
    docs = corpora.read_wikigold(head(WIKIGOLD, 300, tmp_path / "wg.txt"))
    assert len(docs) >= 1 and docs[0].ents[0].text == "010"


def test_split_refuses_too_many(wikigold_docs) -> None:
    with pytest.raises(ValueError, match="keep any for train"):
        corpora.split_by_document(wikigold_docs[:10], dev_docs=5, test_docs=5)


# --- SST-2 ------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "dev"])
def test_sst2_head(split: str, tmp_path: Path) -> None:
    docs = corpora.read_sst2(head(shared("sst2", f"{split}.tsv"), 51, tmp_path / "sst2.tsv"))
    assert len(docs) == 50
    assert all(sorted(doc.cats.values()) == [0.0, 1.0] for doc in docs)
    assert all(doc.text == doc.text.strip() for doc in docs)  # GLUE's space before the tab


def test_sst2_dev_full_counts() -> None:
    docs = corpora.read_sst2(shared("sst2", "dev.tsv"))
    assert len(docs) == 872
    assert sum(doc.cats["POSITIVE"] for doc in docs) == 444


def test_sst2_test_has_no_labels() -> None:
    with pytest.raises(CorpusError, match=r"test\.tsv:1: unlabelled file.*no labels"):
        corpora.read_sst2(shared("sst2", "test.tsv"))


# --- GoEmotions -------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "dev", "test"])
@pytest.mark.parametrize("view", list(GoEmotionsView))
def test_goemotions_head(split: str, view: GoEmotionsView, tmp_path: Path) -> None:
    path = head(GOEMOTIONS / f"{split}.tsv", 200, tmp_path / "go.tsv")
    docs, dropped = corpora.read_goemotions(path, LABELS, view)
    assert len(docs) + dropped == 200
    n_labels = 28 if view is GoEmotionsView.multilabel else 4
    assert all(len(doc.cats) == n_labels for doc in docs)
    if view is GoEmotionsView.sentiment:
        assert all(sum(doc.cats.values()) == 1.0 for doc in docs)


def test_goemotions_dev_full_counts() -> None:
    docs, dropped = corpora.read_goemotions(GOEMOTIONS / "dev.tsv", LABELS)
    assert (len(docs), dropped) == (5_426, 0)
    assert sum(sum(doc.cats.values()) for doc in docs) == 6_380  # label assignments
    assert sum(doc.cats["neutral"] for doc in docs) == 1_766
    assert not any('""' in doc.text for doc in docs)  # CSV quoting undone
    docs, dropped = corpora.read_goemotions(GOEMOTIONS / "dev.tsv", LABELS, GoEmotionsView.sentiment)
    assert (len(docs), dropped) == (5_006, 420)


def test_goemotions_quoting_crlf_and_limit(tmp_path: Path) -> None:
    path = tmp_path / "go.tsv"
    path.write_bytes(b'"He said ""no"" to me"\t2,3\tabc\r\nfine\t27\tdef\r\nok\t17\tghi\r\n')
    docs, _ = corpora.read_goemotions(path, LABELS)
    assert docs[0].text == 'He said "no" to me'
    assert [k for k, v in docs[0].cats.items() if v] == ["anger", "annoyance"]
    assert [k for k, v in docs[1].cats.items() if v] == ["neutral"]
    docs, dropped = corpora.read_goemotions(path, LABELS, GoEmotionsView.sentiment, limit=2)
    assert [doc.cats["negative"] for doc in docs] == [1.0, 0.0] and dropped == 0


# --- Broken inputs: CorpusError names the file and the line -----------------------

CONLL = "conll"
SST2 = "sst2"
GO = "goemotions"
GOOD_CONLL = b"-DOCSTART- -X- O O\n\nEU NNP B-NP B-ORG\nrejects VBZ I-VP O\n"
BROKEN = {
    "conll-one-column": (CONLL, GOOD_CONLL + b"German\n", 5, "2+ space-separated columns"),
    "conll-unknown-tag": (CONLL, GOOD_CONLL + b"German JJ I-NP X-MISC\n", 5, "unknown NER tag 'X-MISC'"),
    "conll-zero-not-O": (CONLL, GOOD_CONLL + b"with IN I-PP 0\n", 5, "unknown NER tag '0'"),
    "conll-column-count": (CONLL, GOOD_CONLL + b"German I-MISC\n", 5, "2 columns, but line 3 has 4"),
    "conll-non-utf8": (CONLL, GOOD_CONLL + b"M\xfcnchen NNP I-NP I-LOC\n", 5, "not valid UTF-8"),
    "conll-docstart-in-line": (CONLL, GOOD_CONLL + b"x-DOCSTART- -X- O O\n", 5, "'-DOCSTART-' inside a token line"),
    "conll-empty": (CONLL, b"", 1, "file is empty"),
    "conll-only-docstart": (CONLL, b"-DOCSTART- -X- O O\n\n", 1, "no tokens"),
    "conll-truncated-last": (CONLL, GOOD_CONLL + b"German", 5, "2+ space-separated columns"),
    "io-with-b-tag": ("io", b"Paris I-LOC\nLondon B-LOC\n", 2, "tag 'B-LOC' in an IO file"),
    "sst2-empty": (SST2, b"", 1, "file is empty"),
    "sst2-header-only": (SST2, b"sentence\tlabel\n", 2, "no examples"),
    "sst2-bad-header": (SST2, b"text\tlabel\nfine \t1\n", 1, "expected the header"),
    "sst2-missing-label": (SST2, b"sentence\tlabel\nfine \t1\nno label here\n", 3, "expected 2 tab-separated fields"),
    "sst2-unknown-label": (SST2, b"sentence\tlabel\nfine \t2\n", 2, "label must be 0 or 1"),
    "sst2-non-utf8": (SST2, b"sentence\tlabel\nfine \t1\ncaf\xe9 \t1\n", 3, "not valid UTF-8"),
    "sst2-truncated-last": (SST2, b"sentence\tlabel\nfine \t1\ntruncat", 3, "expected 2 tab-separated fields"),
    "sst2-unlabelled": (SST2, b"index\tsentence\n0\tfine .\n", 1, "no labels"),
    "go-empty": (GO, b"", 1, "file is empty"),
    "go-unknown-id": (GO, b"fine\t27\ta\nbad\t3,28\tb\n", 2, "unknown label id '28'"),
    "go-non-numeric-id": (GO, b"fine\t27\ta\nbad\tjoy\tb\n", 2, "unknown label id 'joy'"),
    "go-missing-ids": (GO, b"fine\t27\ta\nbad\t\tb\n", 2, "missing label ids"),
    "go-missing-column": (GO, b"fine\t27\ta\nno labels\n", 2, "expected 3 tab-separated fields"),
    "go-truncated-last": (GO, b"fine\t27\ta\ntruncated\t2", 2, "expected 3 tab-separated fields"),
    "go-non-utf8": (GO, b"fine\t27\ta\n\xff\xfe\t2\tb\n", 2, "not valid UTF-8"),
}


def read(kind: str, path: Path) -> None:
    if kind == CONLL:
        corpora.read_conll(path)
    elif kind == "io":
        corpora.read_conll(path, Scheme.io)
    elif kind == SST2:
        corpora.read_sst2(path)
    else:
        corpora.read_goemotions(path, LABELS)


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_input(case: str, tmp_path: Path) -> None:
    kind, data, line, problem = BROKEN[case]
    path = tmp_path / f"{case}.txt"
    path.write_bytes(data)
    with pytest.raises(CorpusError) as err:
        read(kind, path)
    assert str(err.value).startswith(f"{path}:{line}: "), str(err.value)
    assert problem in str(err.value)
    assert err.value.line == line


@pytest.mark.parametrize(
    "labels, line, problem",
    [(b"", 1, "file is empty"), (b"joy\nanger\njoy", 3, "duplicate label"), (b"joy\nsnark\n", 2, "no sentiment group")],
)
def test_broken_labels(labels: bytes, line: int, problem: str, tmp_path: Path) -> None:
    path, data = tmp_path / "labels.txt", tmp_path / "go.tsv"
    path.write_bytes(labels)
    data.write_bytes(b"fine\t0\ta\n")
    with pytest.raises(CorpusError, match=rf"labels\.txt:{line}: .*{problem}"):
        corpora.read_goemotions(data, path, GoEmotionsView.sentiment)


# --- CLI --------------------------------------------------------------------------

runner = CliRunner()


def cli(*args: str | Path):
    result = runner.invoke(app, [str(a) for a in args])
    return result, " ".join(result.output.split())  # wasabi wraps long lines


def assert_clean_failure(result, text: str, expected: str) -> None:
    assert result.exit_code == 1, text
    assert isinstance(result.exception, SystemExit), result.exception  # typer.Exit, not a crash
    assert "Traceback" not in text
    assert expected in text


def test_cli_convert_conll(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_bytes(GOOD_CONLL)
    result, text = cli("convert", "conll", good, tmp_path / "out.spacy", "--scheme", "iob2")
    assert result.exit_code == 0, text
    assert "1 docs; 2 tokens; 1 sentences; 1 entities (ORG 1)" in text
    assert (tmp_path / "out.spacy").stat().st_size > 0
    bad = tmp_path / "bad.txt"
    bad.write_bytes(GOOD_CONLL + b"German JJ I-NP X-MISC\n")
    result, text = cli("convert", "conll", bad, tmp_path / "bad.spacy")
    assert_clean_failure(result, text, "bad.txt:5: unknown NER tag")
    assert not (tmp_path / "bad.spacy").exists()
    result, text = cli("convert", "conll", tmp_path / "missing.txt", tmp_path / "x.spacy")
    assert_clean_failure(result, text, "missing.txt")


def test_cli_convert_wikigold(tmp_path: Path) -> None:
    out = tmp_path / "wikigold"
    result, text = cli("convert", "wikigold", WIKIGOLD, out, "--limit", "10", "--dev-docs", "2", "--test-docs", "3", "--seed", "7")
    assert result.exit_code == 0, text
    assert "10 docs" in text and "dev 2, test 3, train 5" in text
    assert sorted(p.name for p in out.iterdir()) == ["dev.spacy", "test.spacy", "train.spacy"]
    result, text = cli("convert", "wikigold", WIKIGOLD, out, "--limit", "4", "--dev-docs", "2", "--test-docs", "2")
    assert_clean_failure(result, text, "cannot take 2 dev + 2 test documents from 4")
    bad = tmp_path / "bad-wikigold.txt"
    bad.write_bytes(b"Paris I-LOC\nLondon B-LOC\n")
    result, text = cli("convert", "wikigold", bad, out)
    assert_clean_failure(result, text, "bad-wikigold.txt:2: tag 'B-LOC' in an IO file")


def test_cli_convert_sst2(tmp_path: Path) -> None:
    good = tmp_path / "sst2.tsv"
    good.write_bytes(b"sentence\tlabel\na fine film \t1\ndull \t0\nok \t1\n")
    result, text = cli("convert", "sst2", good, tmp_path / "out.spacy", "--limit", "2")
    assert result.exit_code == 0, text
    assert "2 docs; 4 tokens; labels: POSITIVE 1, NEGATIVE 1" in text
    bad = tmp_path / "sst2-test.tsv"
    bad.write_bytes(b"index\tsentence\n0\tfine .\n")
    result, text = cli("convert", "sst2", bad, tmp_path / "bad.spacy")
    assert_clean_failure(result, text, "sst2-test.tsv:1: unlabelled file")


def test_cli_convert_goemotions(tmp_path: Path) -> None:
    good = head(GOEMOTIONS / "dev.tsv", 100, tmp_path / "go.tsv")
    result, text = cli("convert", "goemotions", good, tmp_path / "out.spacy", "--labels", LABELS, "--view", "sentiment", "--limit", "50")
    assert result.exit_code == 0, text
    assert "Dropped" in text and "50 docs" in text and "labels: positive" in text
    bad = tmp_path / "go-bad.tsv"
    bad.write_bytes(b"fine\t27\ta\nbad\t30\tb\n")
    result, text = cli("convert", "goemotions", bad, tmp_path / "bad.spacy", "--labels", LABELS)
    assert_clean_failure(result, text, "go-bad.tsv:2: unknown label id '30'")


# --- raw text for `spacy pretrain` -------------------------------------------------


def test_raw_texts_cut_long_docs_between_sentences() -> None:
    nlp = spacy.blank("en")
    words = "a b c . d e . f g h i j k l . m".split()
    starts = [w == "a" or prev == "." for prev, w in zip([""] + words, words)]
    doc = Doc(nlp.vocab, words=words, sent_starts=starts)
    pieces = list(corpora.raw_texts([doc, nlp.make_doc(""), nlp.make_doc("short one")], max_words=5))
    # "a b c ." (4) + "d e ." would be 7 > 5; "f ... ." (8) is sliced; "m" rides along.
    assert pieces == ["a b c .", "d e .", "f g h i j", "k l . m", "short one"]
    assert " ".join(pieces[:-1]).split() == words  # every token once, in order
    assert all(len(p.split()) <= 5 for p in pieces)
    with pytest.raises(ValueError):
        list(corpora.raw_texts([doc], max_words=0))


def test_cli_raw_text(tmp_path: Path) -> None:
    out = tmp_path / "wikigold"
    assert cli("convert", "wikigold", WIKIGOLD, out, "--limit", "10")[0].exit_code == 0
    result, text = cli("convert", "raw-text", out / "train.spacy", out / "dev.spacy", "-o", tmp_path / "raw.jsonl", "--max-words", "50")
    assert result.exit_code == 0, text
    rows = list(srsly.read_jsonl(tmp_path / "raw.jsonl"))
    assert rows and all(0 < len(row["text"].split()) <= 50 for row in rows)
    assert f"{len(rows):,} texts" in text
    result, text = cli("convert", "raw-text", tmp_path / "missing.spacy", "-o", tmp_path / "x.jsonl")
    assert_clean_failure(result, text, "missing.spacy")


# --- Wikipedia (WikiExtractor) text for `spacy pretrain` ----------------------------

WIKI_FILE = """<doc id="12" url="http://en.wikipedia.org/wiki?curid=12" title="Anarchism">
Anarchism

Anarchism is a political philosophy that advocates stateless societies.
History.
The earliest anarchist themes can be found in the 6th century BC. Later ones followed soon after that.
</doc>
<doc id="25" url="http://en.wikipedia.org/wiki?curid=25" title="Autism">
Autism

Autism is a disorder of neural development characterised by impaired social interaction.
</doc>
"""


def write_wiki(folder: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return folder


def test_wikiextractor_paragraphs_drop_markup_titles_and_headings(tmp_path: Path) -> None:
    path = write_wiki(tmp_path, {"AA/wiki_00": WIKI_FILE}) / "AA" / "wiki_00"
    assert list(corpora.wikiextractor_paragraphs(path)) == [
        "Anarchism is a political philosophy that advocates stateless societies.",
        "The earliest anarchist themes can be found in the 6th century BC. Later ones followed soon after that.",
        "Autism is a disorder of neural development characterised by impaired social interaction.",
    ]
    # Long paragraphs are cut between sentences, every word kept once, in order.
    pieces = list(corpora.wikiextractor_paragraphs(path, min_words=1, max_words=12))
    assert pieces[2:4] == ["The earliest anarchist themes can be found in the 6th century BC.", "Later ones followed soon after that."]
    assert "History." in pieces  # a heading is kept when min_words allows it
    assert all(len(p.split()) <= 12 for p in pieces)


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"<doc id=\"1\" title=\"A\">\nA\nGood text here with words.\n\xff broken byte\n</doc>\n", "4: not valid UTF-8"),
        ("<doc id=\"1\" title=\"A\">\nA\nText that never ends with a close tag.\n", "3: file ends inside a <doc>"),
        ("Plain text that is not WikiExtractor output at all.\n", "1: text outside <doc>"),
        ("</doc>\n", "1: </doc> without <doc>"),
    ],
)
def test_wikiextractor_bad_input_names_file_and_line(tmp_path: Path, content, problem) -> None:
    path = write_wiki(tmp_path, {"AA/wiki_00": content}) / "AA" / "wiki_00"
    with pytest.raises(CorpusError, match=problem) as err:
        list(corpora.wikiextractor_paragraphs(path))
    assert str(err.value).startswith(f"{path}:")


def test_wikiextractor_files_read_only_wiki_files_in_order(tmp_path: Path) -> None:
    write_wiki(tmp_path, {"AB/wiki_00": WIKI_FILE, "AA/wiki_01": WIKI_FILE, "AA/wiki_00": WIKI_FILE, "SOURCE.md": "# not text"})
    assert [p.relative_to(tmp_path).as_posix() for p in corpora.wikiextractor_files(tmp_path)] == ["AA/wiki_00", "AA/wiki_01", "AB/wiki_00"]
    with pytest.raises(CorpusError, match="no such folder"):
        corpora.wikiextractor_files(tmp_path / "missing")
    with pytest.raises(CorpusError, match="no WikiExtractor files"):
        corpora.wikiextractor_files(write_wiki(tmp_path / "empty", {"README": "x"}))


def test_cli_wiki_text(tmp_path: Path) -> None:
    source = write_wiki(tmp_path / "wiki", {"AA/wiki_00": WIKI_FILE, "AA/wiki_01": WIKI_FILE})
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in source.rglob("wiki_*")}
    out = tmp_path / "out" / "raw.jsonl"
    result, text = cli("convert", "wiki-text", source, "-o", out)
    assert result.exit_code == 0, text
    rows = list(srsly.read_jsonl(out))
    assert len(rows) == 6 and rows[0]["text"].startswith("Anarchism is")
    assert "6 texts" in text and "2 of 2 files" in text
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in source.rglob("wiki_*")} == before  # only read
    # --limit-words stops at the first text that reaches the limit.
    result, text = cli("convert", "wiki-text", source, "-o", out, "--limit-words", "20")
    assert result.exit_code == 0, text
    assert len(list(srsly.read_jsonl(out))) == 2 and "1 of 2 files" in text
    # --slice 1: the next texts after those first 20 words.
    result, text = cli("convert", "wiki-text", source, "-o", out, "--limit-words", "20", "--slice", "1")
    assert result.exit_code == 0, text
    assert [row["text"] for row in srsly.read_jsonl(out)] == [row["text"] for row in rows[2:4]]
    # A bad file fails with its name and line, and leaves no output that looks finished.
    write_wiki(source, {"AA/wiki_02": b"<doc id=\"1\" title=\"A\">\nA\n\xfe\n</doc>\n"})
    out.unlink()
    result, text = cli("convert", "wiki-text", source, "-o", out)
    assert_clean_failure(result, text, "wiki_02:3: not valid UTF-8")
    assert not out.exists() and not list(out.parent.glob("*.partial"))
    result, text = cli("convert", "wiki-text", tmp_path / "nowhere", "-o", out)
    assert_clean_failure(result, text, "no such folder")
