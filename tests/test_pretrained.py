"""The encoders that ship inside the package (`spacy_encoder/pretrained/`) and
`spacy-encoder.pretrained_tok2vec.v1`, the name `[initialize] init_tok2vec` takes."""
from __future__ import annotations

import hashlib
import json

import numpy
import pytest
import spacy
from spacy.util import load_config, load_model_from_config

import spacy_encoder.pretrained as pretrained
from spacy_encoder.pretrained import DEFAULT, PretrainedError
from spacy_encoder.pretrained.ship import continued

from .conftest import REPO
from .test_training import NER_DATA
from .test_vectors import ner_examples

CONFIG = REPO / "configs" / "ner_pretrained.cfg"
SMALL = {"width": 32, "depth": 2, "n_heads": 4, "ff_width": 64, "max_length": 16, "window_stride": 12}
TEXT = "Angela Merkel visited Paris ."


def small_nlp(**model):
    overrides = {f"components.tok2vec.model.{k}": v for k, v in {**SMALL, **model}.items()}
    return load_config(CONFIG, overrides=overrides, interpolate=True)


def initialized(config):
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    nlp.initialize(lambda: ner_examples(nlp))
    return nlp


def ship(folder, name, weights: bytes, **meta):
    (folder / f"{name}.bin").write_bytes(weights)
    info = {"name": name, "sha256": hashlib.sha256(weights).hexdigest(), **meta}
    (folder / f"{name}.json").write_text(json.dumps(info))


@pytest.fixture
def shelf(tmp_path, monkeypatch):
    """An empty folder standing in for the package's `pretrained/`, and weights to put
    there: the tok2vec of a small pipeline, as `spacy pretrain` writes it."""
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    pretrained._verified.cache_clear()
    config = small_nlp()
    config["initialize"]["init_tok2vec"] = None
    source = initialized(config)
    return tmp_path, source.get_pipe("tok2vec").model


def test_a_shipped_encoder_loads_by_name_from_the_config(shelf):
    folder, tok2vec = shelf
    ship(folder, DEFAULT, tok2vec.to_bytes())
    config = small_nlp()
    assert config["initialize"]["init_tok2vec"] == {"@misc": "spacy-encoder.pretrained_tok2vec.v1", "name": DEFAULT}
    nlp = initialized(config)
    doc = nlp.make_doc(TEXT)
    numpy.testing.assert_allclose(nlp.get_pipe("tok2vec").model.predict([doc])[0], tok2vec.predict([doc])[0], atol=1e-6)
    # and a fresh initialization without it differs (the weights really came from the file)
    config["initialize"]["init_tok2vec"] = None
    assert not numpy.allclose(initialized(config).get_pipe("tok2vec").model.predict([doc])[0], tok2vec.predict([doc])[0], atol=1e-3)


def test_unknown_and_damaged_encoders_fail_with_one_line(shelf):
    folder, tok2vec = shelf
    with pytest.raises(PretrainedError, match=r"no shipped encoder named 'nope' \(shipped: none"):
        pretrained.weights_path("nope")
    weights = tok2vec.to_bytes()
    ship(folder, DEFAULT, weights)
    (folder / f"{DEFAULT}.bin").write_bytes(weights[:-10] + b"0123456789")
    with pytest.raises(PretrainedError, match="is damaged: sha256"):
        initialized(small_nlp())


def test_weights_of_another_architecture_fail_naming_both(shelf):
    folder, tok2vec = shelf
    ship(folder, DEFAULT, tok2vec.to_bytes())
    with pytest.raises(ValueError, match=r"weights: width 32, .*depth 2, ff_width 64.*; config: width 32, .*depth 3, ff_width 64"):
        initialized(small_nlp(depth=3))


# --- the encoder that ships in this repository ---------------------------------------

SHIPPED = sorted(pretrained.PRETRAINED_DIR.glob("*.json"))


@pytest.mark.skipif(not SHIPPED, reason="no pretrained encoder in spacy_encoder/pretrained/ yet")
def test_the_shipped_encoder_fits_its_config_and_says_where_it_came_from():
    info = pretrained.meta(DEFAULT)
    for key in ("architecture", "objective", "text", "words_seen", "license", "credit", "sha256", "command"):
        assert info.get(key), key
    assert "Wikipedia" in info["credit"]
    path = pretrained.weights_path(DEFAULT)  # checks the sha256
    assert path.stat().st_size < 20 * 2**20
    model = load_config(CONFIG)["components"]["tok2vec"]["model"]
    for key, value in info["architecture"].items():
        assert model[key] == value, key
    for name in ("ner_pretrained", "textcat_pretrained", "textcat_multilabel_pretrained"):
        config = load_config(REPO / "configs" / f"{name}.cfg")
        assert config["initialize"]["init_tok2vec"]["name"] == DEFAULT, name
        block = config["components"]["tok2vec"]["model"]
        assert {key: block[key] for key in info["architecture"]} == info["architecture"], name


@pytest.mark.skipif(not SHIPPED, reason="no pretrained encoder in spacy_encoder/pretrained/ yet")
def test_the_shipped_encoder_starts_a_training_ahead():
    """A few NER steps from the shipped encoder: it loads into the default-sized
    pipeline, and the encoder's output is not that of a random start."""
    config = load_config(CONFIG, interpolate=True)
    nlp = initialized(config)
    doc = nlp.make_doc(TEXT)
    config["initialize"]["init_tok2vec"] = None
    fresh = initialized(config)
    ours = nlp.get_pipe("tok2vec").model.predict([doc])[0]
    assert ours.shape == (len(doc), 128)
    assert not numpy.allclose(ours, fresh.get_pipe("tok2vec").model.predict([doc])[0], atol=1e-2)


@pytest.mark.timeout(300)
def test_pretrain_slices_resume_epoch_by_epoch(tmp_path):
    """`spacy-encoder pretrain-slice`: slice 0 from scratch, slice 1 resumes from
    model0.bin as epoch 1; slice 2 before slice 1 fails naming the missing file."""
    import srsly
    from typer.testing import CliRunner

    from spacy_encoder.cli import app

    from .test_vectors import add_vectors

    texts = [t for t, _ in NER_DATA] * 2
    vocab_nlp = spacy.blank("en")
    add_vectors(vocab_nlp, sorted({t.text for text in texts for t in vocab_nlp.make_doc(text)}), width=300)
    vocab_nlp.to_disk(tmp_path / "vectors")
    srsly.write_jsonl(tmp_path / "raw.jsonl", [{"text": t} for t in texts])
    overrides = {f"components.tok2vec.model.{k}": v for k, v in SMALL.items()}
    load_config(CONFIG, overrides=overrides).to_disk(tmp_path / "small.cfg")  # ${paths} kept
    out = tmp_path / "pretrain"
    runner = CliRunner()

    def run(slice_):
        args = ["pretrain", "slice", str(tmp_path / "small.cfg"), str(out), str(tmp_path / "raw.jsonl"), "--slice", str(slice_), "--vectors", str(tmp_path / "vectors")]
        return runner.invoke(app, args)

    result = run(1)
    assert result.exit_code == 1 and "model0.bin: missing; pretrain slice 0 first" in " ".join(result.output.split())
    assert run(0).exit_code == 0
    assert (out / "model0.bin").exists()
    first = (out / "model0.bin").read_bytes()
    assert run(1).exit_code == 0
    assert (out / "model1.bin").exists() and (out / "model0.bin").read_bytes() == first  # nothing overwritten
    epochs = [row["epoch"] for row in srsly.read_jsonl(out / "log.jsonl")]
    assert 0 in epochs and 1 in epochs


VECTORS_CONFIG = REPO / "configs" / "ner_vectors_pretrained.cfg"


def vectors_start(after_init=True, start=None, **model):
    """A small `ner_vectors_pretrained` pipeline with a vector table for the test words,
    initialized (with the shipped start, unless `after_init` is False; `start` replaces
    the callback's settings)."""
    from .test_vectors import V, add_vectors

    overrides = {f"components.tok2vec.model.{k}": v for k, v in {**SMALL, "vectors_width": V, **model}.items()}
    config = load_config(VECTORS_CONFIG, overrides=overrides, interpolate=True)
    if not after_init:
        config["initialize"]["after_init"] = None
    elif start is not None:
        config["initialize"]["after_init"] = {"@callbacks": "spacy-encoder.start_from_pretrained.v2", "name": DEFAULT, **start}
    else:  # the config's own start, from as many bottom layers as the small encoder has
        config["initialize"]["after_init"]["layers"] = list(range(config["components"]["tok2vec"]["model"]["depth"]))
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    words = sorted({t.text for text, _ in NER_DATA for t in nlp.make_doc(text)} - {"Paris"})
    add_vectors(nlp, words)
    nlp.initialize(lambda: ner_examples(nlp))
    return nlp


def test_a_vectors_config_starts_from_weights_pretrained_without_vectors(shelf):
    """At step 0 the vectors encoder computes exactly what the pretrained one does (the
    vector columns of the mixer are zero), unlike a random start; training then gives
    the vector columns weight."""
    folder, tok2vec = shelf
    ship(folder, DEFAULT, tok2vec.to_bytes())
    nlp = vectors_start(mix_pieces=1)  # the config's maxout pieces start from the row plus noise
    doc = nlp.make_doc(TEXT)  # "Paris" has no vector: zeros, no crash
    expected = tok2vec.predict([doc])[0]
    assert numpy.allclose(nlp.get_pipe("tok2vec").model.predict([doc])[0], expected, atol=1e-5)
    fresh = vectors_start(after_init=False, mix_pieces=1)
    assert not numpy.allclose(fresh.get_pipe("tok2vec").model.predict([doc])[0], expected, atol=1e-2)
    module = nlp.get_pipe("tok2vec").model.layers[0].shims[0]._model
    width = SMALL["width"]
    assert module.embed.mix.weight[:, -width:].abs().max().item() == 0.0
    assert nlp.get_pipe("tok2vec").model.attrs["vectors_width"] > 0  # not overwritten by the file's 0
    from thinc.api import Adam

    optimizer = Adam(0.001)  # the config's schedule starts at 0
    examples = ner_examples(nlp)
    for _ in range(3):
        nlp.update(examples, sgd=optimizer)
    assert module.embed.mix.weight[:, -width:].abs().max().item() > 0.0


def test_a_pretrained_start_that_does_not_fit_names_both(shelf):
    folder, tok2vec = shelf
    ship(folder, DEFAULT, tok2vec.to_bytes())
    with pytest.raises(PretrainedError) as info:
        vectors_start(start={"layers": None}, depth=3)
    message = str(info.value)
    assert "do not fit" in message and "weights: width 32" in message and "depth 2" in message and "depth 3" in message
    assert "\n" not in message


def _layer_weights(module, number):
    prefix = f"encoder.layers.{number}."
    return {key[len(prefix):]: value for key, value in module.state_dict().items() if key.startswith(prefix)}


def test_start_from_pretrained_v2_starts_a_shallower_encoder_from_the_layers_it_names(shelf):
    """`layers` (`.v2`) loads the named pretrained layers, in order, into a shallower
    encoder; everything outside the layers loads as in `.v1`."""
    import torch

    folder, tok2vec = shelf  # depth 2
    ship(folder, DEFAULT, tok2vec.to_bytes())
    theirs = tok2vec.layers[0].shims[0]._model
    for picked in ([1], [0]):
        nlp = vectors_start(start={"layers": picked}, depth=1)
        ours = nlp.get_pipe("tok2vec").model.layers[0].shims[0]._model
        assert len(ours.encoder.layers) == 1
        expected = _layer_weights(theirs, picked[0])
        assert all(torch.equal(value, expected[key]) for key, value in _layer_weights(ours, 0).items())
        assert torch.equal(ours.encoder.final_norm.weight, theirs.encoder.final_norm.weight)
        assert torch.equal(ours.embed.table.weight, theirs.embed.table.weight)
    # Without layers, .v2 is .v1: the whole encoder, the depths must match.
    doc = vectors_start(start={}).make_doc(TEXT)
    same = vectors_start(start={"layers": None}, mix_pieces=1)
    assert numpy.allclose(same.get_pipe("tok2vec").model.predict([doc])[0], tok2vec.predict([doc])[0], atol=1e-5)
    reordered = vectors_start(start={"layers": [1, 0]}, mix_pieces=1)
    assert not numpy.allclose(reordered.get_pipe("tok2vec").model.predict([doc])[0], tok2vec.predict([doc])[0], atol=1e-3)


@pytest.mark.parametrize(
    "layers,depth,match",
    [
        ([2], 1, r"asks for a layer the pretrained encoder lacks \(it has 2: 0 to 1\)"),
        ([0, 1], 1, "names 2 pretrained layers for a config of depth 1"),
        ([0], 2, "names 1 pretrained layers for a config of depth 2"),
    ],
)
def test_start_from_pretrained_v2_layers_that_do_not_fit_fail_in_one_line(shelf, layers, depth, match):
    folder, tok2vec = shelf
    ship(folder, DEFAULT, tok2vec.to_bytes())
    with pytest.raises(PretrainedError, match=match) as info:
        vectors_start(start={"layers": layers}, depth=depth)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("layers", [[], [0, 0], [-1]])
def test_start_from_pretrained_v2_refuses_bad_layer_lists_when_the_config_is_read(layers):
    from spacy_encoder.pretrained.start import create_start_from_pretrained_v2

    with pytest.raises(PretrainedError, match=r"start_from_pretrained.v2: layers must be distinct pretrained layer numbers"):
        create_start_from_pretrained_v2(name=DEFAULT, layers=layers)


def test_start_from_pretrained_needs_exactly_one_source(tmp_path):
    from spacy_encoder.pretrained.start import create_start_from_pretrained_v1, read_pretrained_state

    with pytest.raises(PretrainedError, match="exactly one of name"):
        create_start_from_pretrained_v1()
    with pytest.raises(PretrainedError, match="exactly one of name"):
        create_start_from_pretrained_v1(name=DEFAULT, path="x.bin")
    with pytest.raises(PretrainedError, match="no pretrained weights at"):
        read_pretrained_state(tmp_path / "missing.bin")
    (tmp_path / "junk.bin").write_bytes(b"not msgpack at all")
    with pytest.raises(PretrainedError, match="not a tok2vec written by spacy pretrain"):
        read_pretrained_state(tmp_path / "junk.bin")


def test_ship_pretrained_copies_the_weights_with_their_meta(tmp_path):
    """`spacy-encoder ship-pretrained`: the weights as they are, beside a meta with the
    architecture of the config, the words seen (spaCy's log), the time and the sha256;
    a missing file or an unknown --continues fails in one line."""
    import os

    import srsly
    from typer.testing import CliRunner

    from spacy_encoder.cli import app
    from spacy_encoder.pretrained.ship import SHAPE_SETTINGS

    run = tmp_path / "pretrain"
    run.mkdir()
    (run / "config.cfg").write_text("")  # written when the run starts
    weights = run / "model0.bin"
    weights.write_bytes(b"the weights")
    start = (run / "config.cfg").stat().st_mtime
    os.utime(weights, (start + 100, start + 100))
    srsly.write_jsonl(run / "log.jsonl", [{"epoch": 0, "step": 1, "nr_word": 40, "loss": 12.5, "epoch_loss": 6.25}])
    srsly.write_jsonl(tmp_path / "raw.jsonl", [{"text": TEXT}] * 8)
    out = tmp_path / "shelf"
    args = [
        "pretrain", "ship", str(weights), "--config", str(CONFIG), "--raw-text", str(tmp_path / "raw.jsonl"), "--name", "tiny",
        "--command", "spacy pretrain ...", "--machine", "here", "--output-dir", str(out),
    ]
    runner = CliRunner()
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "tiny.bin").read_bytes() == b"the weights"
    info = srsly.read_json(out / "tiny.json")
    block = load_config(CONFIG)["components"]["tok2vec"]["model"]
    assert info["architecture"] == {"@architectures": block["@architectures"], **{key: block[key] for key in SHAPE_SETTINGS}}
    assert info["objective"] == dict(load_config(CONFIG)["pretraining"]["objective"])
    assert (info["texts"], info["words_in_text"], info["words_seen"], info["epochs"]) == (8, 40, 40, 1.0)
    assert info["loss"]["total"] == 12.5 and info["pretraining_seconds"] == 100
    assert (info["name"], info["command"], info["machine"]) == ("tiny", "spacy pretrain ...", "here")
    assert info["sha256"] == hashlib.sha256(b"the weights").hexdigest()
    result = runner.invoke(app, [*args, "--continues", "no-such-encoder"])
    assert result.exit_code == 1 and "no shipped encoder named 'no-such-encoder'" in " ".join(result.output.split())
    result = runner.invoke(app, ["pretrain", "ship", str(run / "model9.bin"), *args[3:]])
    assert result.exit_code == 1 and "model9.bin: no such weights file" in " ".join(result.output.split())


def test_a_continued_pretraining_sums_its_runs_and_keeps_each(shelf):
    """`spacy-encoder ship-pretrained --continues NAME`: a run resumed from a shipped
    encoder ships with the words, texts and seconds of both runs, each run kept in
    `history`, and refuses a run of another architecture."""
    folder, tok2vec = shelf
    run = {
        "name": "", "architecture": {"width": 128}, "objective": {"loss": "cosine"}, "text": "slice 0", "texts": 10,
        "words_in_text": 1000, "words_seen": 700, "words_seen_note": "", "epochs": 0.7, "loss": {"total": 5.0},
        "pretraining_seconds": 100, "words_per_second": 7, "machine": "m", "command": "c",
    }

    def shelved(name, info):
        ship(folder, name, tok2vec.to_bytes(), **{k: v for k, v in info.items() if k not in ("name", "sha256")})

    shelved("first", run)
    second = {**run, "name": "second", "text": "slice 1", "texts": 12, "words_in_text": 1100, "words_seen": 900, "epochs": 0.8, "pretraining_seconds": 150, "sha256": "x"}
    out = continued(second, "first")
    assert (out["words_seen"], out["texts"], out["words_in_text"], out["pretraining_seconds"]) == (1600, 22, 2100, 250)
    assert out["text"] == "slice 0; then slice 1" and out["continues"] == "first" and out["sha256"] == "x"
    assert [(h["name"], h["words_seen"], h["epochs"]) for h in out["history"]] == [("first", 700, 0.7), ("second", 900, 0.8)]
    # continuing the continued run keeps the whole history
    shelved("second", out)
    third = continued({**second, "name": "third", "words_seen": 50}, "second")
    assert [h["name"] for h in third["history"]] == ["first", "second", "third"] and third["words_seen"] == 1650
    with pytest.raises(PretrainedError, match="--continues first: its architecture or objective is not the config's"):
        continued({**second, "architecture": {"width": 64}}, "first")
