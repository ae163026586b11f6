"""Pipelines built from configs/*.cfg: they overfit a few examples, save and reload
with equal predictions, and handle empty, whitespace-only and long texts."""
import numpy
import pytest
import spacy
import srsly
from spacy.training import Example
from spacy.util import load_config

from spacy_encoder.deploy import script_encoder

from .conftest import REPO

NER_DATA = [
    ("I like London and Berlin.", [(7, 13, "LOC"), (18, 24, "LOC")]),
    ("Angela Merkel visited Paris.", [(0, 13, "PER"), (22, 27, "LOC")]),
    ("Apple hired Tim Cook.", [(0, 5, "ORG"), (12, 20, "PER")]),
    ("Nothing here at all.", []),
]
TEXTCAT_DATA = [
    ("I love this wonderful film", {"POSITIVE": 1.0, "NEGATIVE": 0.0}),
    ("what a great and happy day", {"POSITIVE": 1.0, "NEGATIVE": 0.0}),
    ("this was a terrible boring mess", {"POSITIVE": 0.0, "NEGATIVE": 1.0}),
    ("I hate it , awful", {"POSITIVE": 0.0, "NEGATIVE": 1.0}),
]
MULTILABEL_DATA = [
    ("thanks so much , I love it", {"gratitude": 1.0, "love": 1.0, "anger": 0.0}),
    ("I am so angry right now", {"gratitude": 0.0, "love": 0.0, "anger": 1.0}),
    ("thank you", {"gratitude": 1.0, "love": 0.0, "anger": 0.0}),
    ("the weather is grey", {"gratitude": 0.0, "love": 0.0, "anger": 0.0}),
]


def nlp_from_config(name: str, **model_overrides) -> spacy.Language:
    config = load_config(REPO / "configs" / f"{name}.cfg")
    config["training"]["optimizer"]["learn_rate"] = 0.001  # no warmup for a few steps
    config["components"]["tok2vec"]["model"].update(model_overrides)
    return spacy.util.load_model_from_config(config, auto_fill=True, validate=True)


def examples(nlp, name):
    if name == "ner":
        return [Example.from_dict(nlp.make_doc(t), {"entities": ents}) for t, ents in NER_DATA]
    data = TEXTCAT_DATA if name == "textcat" else MULTILABEL_DATA
    return [Example.from_dict(nlp.make_doc(t), {"cats": cats}) for t, cats in data]


def train(nlp, exs, n_steps):
    optimizer = nlp.initialize(lambda: exs)
    for _ in range(n_steps):
        losses = {}
        nlp.update(exs, sgd=optimizer, losses=losses)
    return losses


def predictions(nlp, texts):
    docs = list(nlp.pipe(texts))
    ents = [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in docs]
    cats = [d.cats for d in docs]
    tensors = [d.tensor for d in docs]
    return ents, cats, tensors


def assert_same_predictions(a, b):
    assert a[0] == b[0]
    for x, y in zip(a[1], b[1]):
        assert x.keys() == y.keys()
        numpy.testing.assert_allclose(list(x.values()), list(y.values()), atol=1e-5)
    for x, y in zip(a[2], b[2]):
        numpy.testing.assert_allclose(x, y, atol=1e-5)


@pytest.fixture(scope="module")
def trained_ner():
    nlp = nlp_from_config("ner")
    exs = examples(nlp, "ner")
    # 80, not fewer: the config's feature dropout keeps the loss noisy up to ~60 steps.
    losses = train(nlp, exs, 80)
    return nlp, losses


def test_ner_overfits(trained_ner):
    nlp, losses = trained_ner
    assert losses["ner"] < 1.0
    for text, ents in NER_DATA:
        doc = nlp(text)
        assert [(e.start_char, e.end_char, e.label_) for e in doc.ents] == ents


def test_ner_save_load_equal_predictions(trained_ner, tmp_path):
    nlp, _ = trained_ner
    texts = [t for t, _ in NER_DATA] + ["A longer text about Berlin and Paris " * 40]
    before = predictions(nlp, texts)
    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    assert_same_predictions(predictions(loaded, texts), before)


def test_ner_pipe_equals_call(trained_ner):
    nlp, _ = trained_ner
    texts = [t for t, _ in NER_DATA] + ["", "   "]
    piped = list(nlp.pipe(texts, batch_size=2))
    for text, doc in zip(texts, piped):
        single = nlp(text)
        assert [e.text for e in single.ents] == [e.text for e in doc.ents]
        numpy.testing.assert_allclose(single.tensor, doc.tensor, atol=1e-5)


@pytest.mark.parametrize("text", ["", "   ", "word", " ".join(["token"] * 2000)])
def test_ner_hard_lengths_set_tensor(trained_ner, text):
    nlp, _ = trained_ner
    doc = nlp(text)
    assert doc.tensor.shape == (len(doc), 128)
    assert numpy.isfinite(doc.tensor).all()


def test_ner_torchscript_pipeline_equals_eager(trained_ner, tmp_path):
    nlp, _ = trained_ner
    texts = [t for t, _ in NER_DATA]
    before = predictions(nlp, texts)
    nlp.to_disk(tmp_path / "eager")
    scripted = spacy.load(tmp_path / "eager")
    script_encoder(scripted.get_pipe("tok2vec").model)
    assert_same_predictions(predictions(scripted, texts), before)


@pytest.mark.parametrize("name", ["textcat", "textcat_multilabel"])
def test_textcat_overfits_and_reloads(name, tmp_path):
    nlp = nlp_from_config(name)
    exs = examples(nlp, name)
    losses = train(nlp, exs, 40)
    assert losses[name] < 0.05
    data = TEXTCAT_DATA if name == "textcat" else MULTILABEL_DATA
    for text, cats in data:
        doc = nlp(text)
        for label, value in cats.items():
            assert abs(doc.cats[label] - value) < 0.3, (text, label, doc.cats)
    texts = [t for t, _ in data] + ["", "  "]
    before = predictions(nlp, texts)
    nlp.to_disk(tmp_path / name)
    assert_same_predictions(predictions(spacy.load(tmp_path / name), texts), before)


def test_torchscript_config_trains_and_reloads(tmp_path):
    nlp = nlp_from_config("textcat", torchscript=True)
    exs = examples(nlp, "textcat")
    train(nlp, exs, 40)
    texts = [t for t, _ in TEXTCAT_DATA]
    assert nlp(texts[0]).cats["POSITIVE"] > 0.7
    before = predictions(nlp, texts)
    nlp.to_disk(tmp_path / "scripted")
    assert_same_predictions(predictions(spacy.load(tmp_path / "scripted"), texts), before)


@pytest.mark.parametrize("name", ["ner", "textcat", "textcat_multilabel"])
def test_spacy_pretrain_weights_reach_training(name, tmp_path):
    """`spacy pretrain` runs on the config and learns (spaCy never steps a schedule
    there: a warmup would keep the rate at 0), and `init_tok2vec` loads its weights
    (spaCy silently ignores init_tok2vec when [pretraining] is empty)."""
    from spacy.training.pretrain import pretrain

    texts = [t for t, _ in NER_DATA + TEXTCAT_DATA + MULTILABEL_DATA]
    srsly.write_jsonl(tmp_path / "raw.jsonl", [{"text": t} for t in texts * 3])
    overrides = {"paths.raw_text": str(tmp_path / "raw.jsonl"), "pretraining.max_epochs": 3}
    config = load_config(REPO / "configs" / f"{name}.cfg", overrides=overrides, interpolate=True)
    (tmp_path / "pretrain").mkdir()
    pretrain(config, tmp_path / "pretrain", silent=True)
    weights = tmp_path / "pretrain" / "model2.bin"
    assert weights.exists()
    log = list(srsly.read_jsonl(tmp_path / "pretrain" / "log.jsonl"))
    epoch_losses = [row["epoch_loss"] for row in log[:3]]  # then a row for model-last
    assert epoch_losses[0] > epoch_losses[1] > epoch_losses[2], epoch_losses  # equal at rate 0

    def initialized(init_tok2vec):
        config = load_config(REPO / "configs" / f"{name}.cfg", overrides={"paths.init_tok2vec": init_tok2vec}, interpolate=True)
        nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
        nlp.initialize(lambda: examples(nlp, name))
        return nlp.get_pipe("tok2vec").model

    doc = spacy.blank("en").make_doc("Angela Merkel visited Paris .")
    reference = initialized(None)
    untrained = reference.predict([doc])[0]
    reference.from_bytes(weights.read_bytes())
    expected = reference.predict([doc])[0]
    numpy.testing.assert_allclose(initialized(str(weights)).predict([doc])[0], expected, atol=1e-5)
    assert not numpy.allclose(untrained, expected, atol=1e-3)
