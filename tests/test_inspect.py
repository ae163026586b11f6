"""Inspection (issue 7): attention heatmaps, the stage-by-stage trace and training
curves, on a small pipeline built from configs/ner.cfg and saved to disk."""
import json
import os
import subprocess
import sys

import numpy
import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training import Example
from spacy.util import load_config
from typer.testing import CliRunner

from spacy_encoder import inspect as insp
from spacy_encoder.cli import app

from .conftest import REPO

TEXT = "EU rejects German call to boycott British lamb ."
LONG_TEXT = " ".join(["Angela Merkel visited Paris and London ."] * 6)  # 42 tokens: 4 windows of 16
SMALL = {
    "width": 32,
    "depth": 2,
    "n_heads": 2,
    "ff_width": 64,
    "rows": [500, 100, 250, 250],
    "max_length": 16,
    "window_stride": 12,
}
SMALL_OVERRIDES = [
    f"--components.tok2vec.model.{key}={json.dumps(value)}" for key, value in SMALL.items()
]
NER_DATA = [
    ("I like London and Berlin.", [(7, 13, "LOC"), (18, 24, "LOC")]),
    ("Angela Merkel visited Paris.", [(0, 13, "PER"), (22, 27, "LOC")]),
    ("Apple hired Tim Cook.", [(0, 5, "ORG"), (12, 20, "PER")]),
]
runner = CliRunner()


@pytest.fixture
def mpl():
    return pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    config = load_config(REPO / "configs" / "ner.cfg")
    config["training"]["optimizer"]["learn_rate"] = 0.001
    config["components"]["tok2vec"]["model"].update(SMALL)
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    examples = [Example.from_dict(nlp.make_doc(t), {"entities": e}) for t, e in NER_DATA]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(2):
        nlp.update(examples, sgd=optimizer)
    path = tmp_path_factory.mktemp("inspect") / "pipeline"
    nlp.to_disk(path)
    return path


@pytest.fixture(scope="module")
def loaded(model_dir):
    nlp = spacy.load(model_dir)
    name, node = insp.find_tok2vec(nlp)
    return nlp, name, node


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def png_shape(path):
    image = pytest.importorskip("matplotlib.image").imread(path)  # (rows, cols, channels)
    return image


def test_finds_the_tok2vec(loaded):
    nlp, name, node = loaded
    assert name == "tok2vec" and node.name == insp.TOK2VEC_NODE
    with pytest.raises(insp.InspectError, match="No component 'nope'"):
        insp.find_tok2vec(nlp, "nope")
    with pytest.raises(insp.InspectError, match="No spacy-encoder.tok2vec layer"):
        insp.find_tok2vec(nlp, "ner")  # ner only listens


def test_attention_rows_sum_to_one_over_real_tokens(loaded):
    nlp, name, node = loaded
    doc = insp.doc_for(nlp, TEXT, name)
    inspection = insp.inspect_window(node, doc)
    n = len(doc)
    assert inspection.tokens == [t.text for t in doc]
    assert len(inspection.weights) == SMALL["depth"]
    for weights in inspection.weights:
        assert weights.shape == (SMALL["n_heads"], n, n)  # a batch of one: no padding
        assert (weights >= 0).all()
        numpy.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)


def test_explicit_path_equals_doc_tensor(loaded):
    nlp, name, node = loaded
    for text in (TEXT, LONG_TEXT):
        inspection = insp.inspect_doc(node, insp.doc_for(nlp, text, name), component=name)
        tensor = nlp(text).tensor
        assert [s.shape for _, s in inspection.stages] == [tensor.shape] * (SMALL["depth"] + 2)
        numpy.testing.assert_allclose(inspection.output, tensor, atol=1e-4)
    assert len(inspection.windows) == 4 and inspection.weights == []  # several windows: no weights


def test_long_doc_shows_the_window_holding_the_token(loaded):
    nlp, name, node = loaded
    doc = insp.doc_for(nlp, LONG_TEXT, name)
    tensor = nlp(LONG_TEXT).tensor
    for token in (0, 20, len(doc) - 1):
        inspection = insp.inspect_window(node, doc, token=token)
        start, length, own_start, own_end = next(w for w in inspection.windows if w[2] <= token < w[3])
        assert (inspection.start, inspection.end) == (start, start + length) and length == SMALL["max_length"]
        assert inspection.tokens == [t.text for t in doc[start : start + length]]
        assert inspection.weights[0].shape[-1] == SMALL["max_length"]
        # The window's vectors for the tokens it owns are the fast path's.
        owned = inspection.output[own_start - start : own_end - start]
        numpy.testing.assert_allclose(owned, tensor[own_start:own_end], atol=1e-4)
    with pytest.raises(insp.InspectError, match="out of range"):
        insp.inspect_window(node, doc, token=len(doc))


def test_attention_png(model_dir, tmp_path, mpl):
    n_tokens = len(TEXT.split())
    for head, n_panels in ((None, SMALL["n_heads"]), (2, 1)):
        path = tmp_path / f"attention-{head}.png"
        args = ["inspect", "attention", model_dir, TEXT, "-o", path, "--layer", "1", "--dpi", 50]
        result = invoke(*(args + (["--head", head] if head else [])))
        assert result.exit_code == 0, result.output
        image = png_shape(path)
        width, height = insp.attention_figure_size(n_tokens, n_panels)
        assert abs(image.shape[0] - height * 50) <= 1 and abs(image.shape[1] - width * 50) <= 1
        assert image[..., :3].var() > 0


def test_attention_long_doc_and_bad_options(model_dir, tmp_path, mpl):
    path = tmp_path / "long.png"
    result = invoke("inspect", "attention", model_dir, LONG_TEXT, "-o", path, "--token", 30, "--dpi", 30)
    assert result.exit_code == 0, result.output
    assert path.exists() and "of 42" in result.output
    for bad in (["--layer", 3], ["--head", 0], ["--token", 42]):
        result = invoke("inspect", "attention", model_dir, TEXT, "-o", tmp_path / "bad.png", *bad)
        assert result.exit_code == 1 and "out of range" in result.output
    result = invoke("inspect", "attention", tmp_path / "no-such-model", TEXT)
    assert result.exit_code == 1 and "Cannot load" in result.output


def test_trace(model_dir, loaded):
    nlp = loaded[0]
    doc = nlp(TEXT)
    n, width = doc.tensor.shape
    result = invoke("inspect", "trace", model_dir, TEXT)
    assert result.exit_code == 0, result.output
    out = result.output
    stages = ["tokens", "feature ids (NORM, PREFIX, SUFFIX, SHAPE)", "embeddings", "input stage", "encoder layer 1"]
    stages += ["encoder layer 2 + final norm", "output vectors (doc.tensor)", "ner"]
    position = out.index("-----")  # the table, in stage order
    for stage in stages:
        position = out.index(stage, position)
    assert out.count(f"({n}, {width})") >= SMALL["depth"] + 3  # every vector stage, and the head's input
    assert f"({n}, 4)" in out and "NORM='eu'" in out and "doc.ents (" in out
    assert "max |diff|" in out
    # The printed output row is doc.tensor's first numbers.
    assert " ".join(f"{v:+.3f}" for v in doc.tensor[0, :3]) in out


def test_textcat_torchscript_pipeline(tmp_path, mpl):
    """Another head and the TorchScript module (scripted ModuleLists cannot be indexed)."""
    config = load_config(REPO / "configs" / "textcat.cfg")
    config["training"]["optimizer"]["learn_rate"] = 0.001
    config["components"]["tok2vec"]["model"].update(SMALL, torchscript=True, positions="sinusoidal")
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    cats = [("good film", 1.0), ("bad film", 0.0)]
    examples = [Example.from_dict(nlp.make_doc(t), {"cats": {"POSITIVE": p, "NEGATIVE": 1 - p}}) for t, p in cats]
    nlp.initialize(lambda: examples)
    nlp.to_disk(tmp_path / "textcat")
    result = invoke("inspect", "trace", tmp_path / "textcat", TEXT)
    assert result.exit_code == 0, result.output
    assert "+ sinusoidal positions" in result.output and "doc.cats (2,)" in result.output
    result = invoke("inspect", "attention", tmp_path / "textcat", TEXT, "-o", tmp_path / "a.png", "--dpi", 30)
    assert result.exit_code == 0, result.output


def test_trace_long_doc_checks_the_stitched_output(model_dir):
    result = invoke("inspect", "trace", model_dir, LONG_TEXT)
    assert result.exit_code == 0, result.output
    assert "4 windows" in result.output and "(42, 32)" in result.output


def test_plot_training_from_a_real_run(tmp_path, mpl):
    nlp = spacy.blank("en")
    docbin = DocBin()
    for text, ents in NER_DATA:
        doc = nlp.make_doc(text)
        doc.ents = [doc.char_span(s, e, label=label) for s, e, label in ents]
        docbin.add(doc)
    docbin.to_disk(tmp_path / "tiny.spacy")
    log = tmp_path / "train" / "log.jsonl"
    command = [sys.executable, "-m", "spacy", "train", str(REPO / "configs" / "ner.cfg")]
    command += [f"--paths.train={tmp_path / 'tiny.spacy'}", f"--paths.dev={tmp_path / 'tiny.spacy'}"]
    command += [f"--paths.log={log}", "--training.max_steps=10", "--training.eval_frequency=5"]
    command += ["--training.optimizer.learn_rate=0.001"] + SMALL_OVERRIDES
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    records = insp.read_training_log(log.parent)  # the directory finds log.jsonl
    assert [r["step"] for r in records] == [0, 5, 10]
    assert set(records[0]["losses"]) == {"tok2vec", "ner"}
    assert set(records[0]["scores"]) == {"ents_f", "ents_p", "ents_r"}
    losses = insp.losses_per_step(records)
    assert losses["ner"][1] == pytest.approx(records[1]["losses"]["ner"] / 5)

    for source in (log, log.parent):
        path = tmp_path / "curves.png"
        result = invoke("inspect", "training", source, "-o", path, "--dpi", 50)
        assert result.exit_code == 0, result.output
        image = png_shape(path)
        assert image.shape[:2] == (240, 600) and image[..., :3].var() > 0


def test_plot_training_errors(tmp_path):
    result = invoke("inspect", "training", tmp_path, "-o", tmp_path / "x.png")
    assert result.exit_code == 1 and "--paths.log" in result.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"no": 1}\n{"step": 0}\n', encoding="utf8")
    result = invoke("inspect", "training", bad, "-o", tmp_path / "x.png")
    assert result.exit_code == 1 and "ConsoleLogger.v3" in result.output


def test_missing_matplotlib_says_how_to_install(model_dir, tmp_path, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    result = invoke("inspect", "attention", model_dir, TEXT, "-o", tmp_path / "a.png")
    assert result.exit_code == 1 and "pip install spacy-encoder[viz]" in result.output
    assert not (tmp_path / "a.png").exists()


# --- unseen-entities ------------------------------------------------------------------


def _ner_doc(nlp, words, ents):
    from spacy.tokens import Span

    doc = spacy.tokens.Doc(nlp.vocab, words=words)
    doc.ents = [Span(doc, start, end, label=label) for start, end, label in ents]
    return doc


def test_unseen_entities_splits_recall_by_names_seen_in_training(tmp_path):
    nlp = spacy.blank("en")
    # The "model" knows Paris and Berlin, both as LOC; it never finds Ada.
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "LOC", "pattern": "Paris"}, {"label": "LOC", "pattern": "Berlin"}])
    train = [_ner_doc(nlp, ["Paris", "and", "Ada", "."], [(0, 1, "LOC"), (2, 3, "PER")])]
    evaluation = [
        _ner_doc(nlp, ["Paris", "met", "Berlin", "."], [(0, 1, "LOC"), (2, 3, "LOC")]),  # seen found, unseen found
        _ner_doc(nlp, ["Ada", "saw", "Bob", "."], [(0, 1, "PER"), (2, 3, "PER")]),  # seen missed, unseen missed
        _ner_doc(nlp, ["Berlin", "!"], [(0, 1, "ORG")]),  # unseen, found with the wrong label
    ]
    split = insp.seen_unseen_recall(nlp, train, evaluation, name="eval").as_dict()
    assert (split["seen"], split["unseen"], split["entities"]) == (2, 3, 5)
    assert split["seen_recall"] == pytest.approx(1 / 2)
    assert split["unseen_recall"] == pytest.approx(1 / 3)
    assert split["unseen_share"] == pytest.approx(3 / 5)
    # The pipeline annotated copies: the gold docs keep their own entities.
    assert [[(e.text, e.label_) for e in doc.ents] for doc in evaluation] == [
        [("Paris", "LOC"), ("Berlin", "LOC")],
        [("Ada", "PER"), ("Bob", "PER")],
        [("Berlin", "ORG")],
    ]

    nlp.to_disk(tmp_path / "pipeline")
    DocBin(docs=train).to_disk(tmp_path / "train.spacy")
    DocBin(docs=evaluation).to_disk(tmp_path / "eval.spacy")
    args = ["inspect", "unseen", str(tmp_path / "pipeline"), str(tmp_path / "train.spacy"), str(tmp_path / "eval.spacy")]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "out" / "unseen.json")])
    assert result.exit_code == 0, result.output
    assert "50.0" in result.output and "33.3" in result.output
    written = json.loads((tmp_path / "out" / "unseen.json").read_text())
    assert written["splits"][0]["unseen"] == 3

    result = runner.invoke(app, [*args[:4], str(tmp_path / "missing.spacy")])
    assert result.exit_code == 1 and "missing.spacy" in result.output
    spacy.blank("en").to_disk(tmp_path / "no_ner")
    result = runner.invoke(app, ["inspect", "unseen", str(tmp_path / "no_ner"), *args[3:]])
    assert result.exit_code == 1 and "sets entities or tags" in result.output


# A "tagger" that knows the tags of two words and calls every other word NN.
LOOKUP_TAGS = {"Paris": "NNP", "runs": "VBZ"}


@spacy.Language.component("test_lookup_tagger", assigns=["token.tag"])
def _lookup_tagger(doc):
    for token in doc:
        token.tag_ = LOOKUP_TAGS.get(token.text, "NN")
    return doc


def _tagged_doc(nlp, words, tags):
    return spacy.tokens.Doc(nlp.vocab, words=words, tags=tags)


def test_unseen_words_split_tag_accuracy_by_words_seen_in_training(tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("test_lookup_tagger")
    train = [_tagged_doc(nlp, ["Paris", "runs", "."], ["NNP", "VBZ", "."])]
    evaluation = [
        # seen: Paris right, runs right, "." wrong (NN); unseen: Oslo wrong (NN), dog right
        _tagged_doc(nlp, ["Paris", "runs", "Oslo", "dog", "."], ["NNP", "VBZ", "NNP", "NN", "."]),
        spacy.tokens.Doc(nlp.vocab, words=["untagged"]),  # no gold tag: not counted
    ]
    split = insp.seen_unseen_tags(nlp, train, evaluation, name="eval").as_dict()
    assert (split["seen"], split["unseen"], split["tokens"]) == (3, 2, 5)
    assert split["seen_accuracy"] == pytest.approx(2 / 3)
    assert split["unseen_accuracy"] == pytest.approx(1 / 2)
    assert split["accuracy"] == pytest.approx(3 / 5)
    # The pipeline tagged copies: the gold docs keep their own tags.
    assert [t.tag_ for t in evaluation[0]] == ["NNP", "VBZ", "NNP", "NN", "."]

    nlp.to_disk(tmp_path / "pipeline")
    DocBin(docs=train, attrs=["ORTH", "TAG"]).to_disk(tmp_path / "train.spacy")
    DocBin(docs=evaluation, attrs=["ORTH", "TAG"]).to_disk(tmp_path / "eval.spacy")
    args = ["inspect", "unseen", str(tmp_path / "pipeline"), str(tmp_path / "train.spacy"), str(tmp_path / "eval.spacy")]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "unseen.json")])
    assert result.exit_code == 0, result.output
    assert "66.7" in result.output and "50.0" in result.output and "recall" not in result.output
    written = json.loads((tmp_path / "unseen.json").read_text())
    assert written["splits"] == [] and written["tags"][0]["unseen"] == 2
