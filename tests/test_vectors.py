"""Static vectors in `spacy-encoder.TransformerTok2Vec.v2`: looked up as spaCy's
StaticVectors does, used by the model, never copied into its weights, checked against
the pipeline's vectors at initialization and load, and carried through save/load,
TorchScript and export. The vectors are made here (small, random), so no download."""
import json
import subprocess
import sys

import numpy
import pytest
import spacy
import torch
from confection import ConfigValidationError
from spacy.attrs import ORTH
from spacy.training import Example
from spacy.util import load_config

from spacy_encoder.deploy import export_encoder, script_pipeline
from spacy_encoder.nodes import TOK2VEC, encoder_nodes
from spacy_encoder.layers import static_vectors

from .conftest import REPO
from .test_training import NER_DATA, TEXTCAT_DATA

V = 8
SMALL = dict(width=32, depth=2, n_heads=4, ff_width=64, vectors_width=V, max_length=16, window_stride=12)
LONG_TEXT = (
    "The committee met in Geneva on Tuesday , and after a long debate about the budget , "
    "Maria Lopez of the finance office said that the new rules would come into force in "
    "March . Critics in Brussels and Paris called the plan rushed , while the union at "
    "Siemens asked for more time to study it ."
)


def add_vectors(nlp, words, width=V, seed=0):
    """A table with exactly one nonzero row per word (`set_vector` would leave spare
    zero rows, which hide a lookup that sends missing words to row -1)."""
    from spacy.vectors import Vectors

    rng = numpy.random.default_rng(seed)
    data = rng.normal(size=(len(words), width)).astype("float32")
    keys = [nlp.vocab.strings.add(word) for word in words]
    nlp.vocab.vectors = Vectors(strings=nlp.vocab.strings, data=data, keys=keys)


def vectors_nlp(name="ner_vectors", with_vectors=True, **overrides):
    config = load_config(REPO / "configs" / f"{name}.cfg")
    config["training"]["optimizer"]["learn_rate"] = 0.001
    settings = {**SMALL, **overrides}
    config["components"]["tok2vec"]["model"].update({k: v for k, v in settings.items() if v is not None})
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    if with_vectors:
        words = {t.text for text, _ in NER_DATA + TEXTCAT_DATA for t in nlp.make_doc(text)}
        words |= {t.text for t in nlp.make_doc(LONG_TEXT)}
        add_vectors(nlp, sorted(words - {"Nothing", "Siemens"}))  # two words without a vector
    return nlp


def ner_examples(nlp):
    return [Example.from_dict(nlp.make_doc(t), {"entities": e}) for t, e in NER_DATA]


def train(nlp, exs, n_steps):
    optimizer = nlp.initialize(lambda: exs)
    for _ in range(n_steps):
        nlp.update(exs, sgd=optimizer)
    return nlp


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    nlp = vectors_nlp()
    train(nlp, ner_examples(nlp), 40)
    path = tmp_path_factory.mktemp("vectors") / "eager"
    nlp.to_disk(path)
    return path


def tok2vec_node(nlp):
    return next(encoder_nodes(nlp.get_pipe("tok2vec").model, (TOK2VEC,)))


def test_lookup_is_spacys_key_to_row_with_zeros_for_missing_words():
    nlp = vectors_nlp()
    nlp.initialize(lambda: ner_examples(nlp))
    docs = [nlp.make_doc("Nothing here , Siemens"), nlp.make_doc(""), nlp.make_doc("I like London")]
    looked_up = static_vectors(tok2vec_node(nlp), docs)
    assert looked_up.shape == (7, V)
    tokens = [t for d in docs for t in d]
    for token, row in zip(tokens, looked_up):
        if token.text in ("Nothing", "Siemens"):
            assert not nlp.vocab.has_vector(token.orth)
            assert not row.any()
        else:
            numpy.testing.assert_array_equal(row, nlp.vocab.vectors[token.orth])
    # The key is ORTH, as in spaCy's StaticVectors: case matters.
    assert nlp.vocab.vectors.find(key=nlp.vocab.strings["london"]) == -1
    assert static_vectors(tok2vec_node(nlp), [nlp.make_doc("london")]).sum() == 0.0
    assert ORTH == getattr(nlp.vocab.vectors, "attr", ORTH)


def test_the_model_reads_the_vectors():
    nlp = vectors_nlp()
    nlp.initialize(lambda: ner_examples(nlp))
    before = nlp("I like London").tensor.copy()
    nlp.vocab.set_vector("London", numpy.full((V,), 3.0, dtype="float32"))
    after = nlp("I like London").tensor
    assert not numpy.allclose(before[2], after[2], atol=1e-4), "the changed word's own vector"
    assert not numpy.allclose(before[0], after[0], atol=1e-6), "its context, through attention"


def test_v2_without_vectors_equals_v1():
    torch.manual_seed(0)
    v1 = vectors_nlp("ner", with_vectors=False, vectors_width=None)
    torch.manual_seed(0)
    v2 = vectors_nlp(with_vectors=False, vectors_width=0, vectors_dropout=0.0, output_scale=1.0)
    for nlp in (v1, v2):
        nlp.initialize(lambda: ner_examples(nlp))
    texts = [t for t, _ in NER_DATA] + [LONG_TEXT]
    for a, b in zip(v1.pipe(texts), v2.pipe(texts)):
        numpy.testing.assert_array_equal(a.tensor, b.tensor)


def test_output_scale_multiplies_the_output_and_nothing_else():
    outputs = []
    for scale in (1.0, 3.0):
        torch.manual_seed(0)
        nlp = vectors_nlp(output_scale=scale)
        nlp.initialize(lambda: ner_examples(nlp))
        outputs.append([d.tensor for d in nlp.pipe([LONG_TEXT, "I like London", ""])])
    for one, three in zip(*outputs):
        numpy.testing.assert_allclose(three, 3.0 * one, rtol=1e-5, atol=1e-6)
    assert numpy.abs(outputs[1][0]).mean() > 2.0  # LayerNorm's output times 3


def test_vectors_are_not_in_the_encoder_weights(trained):
    nlp = spacy.load(trained)
    module = tok2vec_node(nlp).layers[0].shims[0]._model
    n_rows = nlp.vocab.vectors.shape[0]
    shapes = [tuple(p.shape) for p in module.state_dict().values()]
    assert (32, V) in shapes  # the projection
    assert not any(n_rows in s and V in s for s in shapes), shapes
    assert all(p.requires_grad for p in module.parameters())


def test_saved_pipeline_carries_its_vectors_and_predicts_equally(trained, tmp_path):
    nlp = spacy.load(trained)
    texts = [t for t, _ in NER_DATA] + [LONG_TEXT, "", "   "]
    expected = [(d.tensor, [(e.start, e.end, e.label_) for e in d.ents]) for d in nlp.pipe(texts)]
    assert any(ents for _, ents in expected[: len(NER_DATA)]), "the fixture should predict entities"
    nlp.to_disk(tmp_path / "again")
    reloaded = spacy.load(tmp_path / "again")  # vectors come from the pipeline's own vocab
    assert reloaded.vocab.vectors.shape == nlp.vocab.vectors.shape
    for (tensor, ents), doc in zip(expected, reloaded.pipe(texts)):
        numpy.testing.assert_allclose(doc.tensor, tensor, atol=1e-5)
        assert [(e.start, e.end, e.label_) for e in doc.ents] == ents


def test_batched_equals_one_by_one_and_long_docs_are_windowed(trained):
    nlp = spacy.load(trained)
    texts = [LONG_TEXT, "I like London and Berlin.", "", LONG_TEXT[:60]]
    assert len(nlp.make_doc(LONG_TEXT)) > 3 * SMALL["max_length"]
    batched = [d.tensor for d in nlp.pipe(texts, batch_size=4)]
    for text, tensor in zip(texts, batched):
        numpy.testing.assert_allclose(nlp(text).tensor, tensor, atol=1e-5)
        assert tensor.shape == (len(nlp.make_doc(text)), 32)


def test_no_vectors_in_the_vocab_fails_at_initialization_naming_both():
    nlp = vectors_nlp(with_vectors=False)
    with pytest.raises(ConfigValidationError) as err:
        nlp.initialize(lambda: ner_examples(nlp))
    assert "vectors_width is 8, but the pipeline's vocab has no vectors" in str(err.value)


def test_vectors_of_another_width_fail_at_initialization_naming_both():
    nlp = vectors_nlp(with_vectors=False)
    add_vectors(nlp, ["London", "Paris"], width=5)
    with pytest.raises(ConfigValidationError) as err:
        nlp.initialize(lambda: ner_examples(nlp))
    assert "vectors_width is 8, but the pipeline's vectors have width 5" in str(err.value)


def test_vectors_of_another_width_fail_at_use_after_load(trained, tmp_path):
    nlp = spacy.load(trained)
    nlp.vocab.reset_vectors(width=5)
    nlp.vocab.set_vector("London", numpy.ones((5,), dtype="float32"))
    nlp.to_disk(tmp_path / "swapped")
    swapped = spacy.load(tmp_path / "swapped")
    with pytest.raises(ValueError, match="vectors_width is 8, but the pipeline's vectors have width 5"):
        swapped("I like London")


def test_bad_vectors_settings_name_the_field():
    with pytest.raises(ConfigValidationError, match="vectors_width"):
        vectors_nlp(vectors_width=-1)
    with pytest.raises(ConfigValidationError, match="vectors_dropout"):
        vectors_nlp(vectors_dropout=1.5)


def test_torchscript_option_equals_eager_with_vectors():
    pipelines = []
    for torchscript in (False, True):
        torch.manual_seed(0)  # the same initial weights; scripting draws no numbers
        nlp = vectors_nlp(torchscript=torchscript)
        nlp.initialize(lambda: ner_examples(nlp))
        pipelines.append(nlp)
    module = tok2vec_node(pipelines[1]).layers[0].shims[0]._model
    assert isinstance(module, torch.jit.ScriptModule)
    texts = [t for t, _ in NER_DATA] + [LONG_TEXT]
    for a, b in zip(pipelines[0].pipe(texts), pipelines[1].pipe(texts)):
        numpy.testing.assert_allclose(a.tensor, b.tensor, atol=1e-5)


def test_script_pipeline_with_vectors_equals_eager(trained, tmp_path):
    texts = [t for t, _ in NER_DATA] + [LONG_TEXT, ""]
    eager = spacy.load(trained)
    expected = [(d.tensor, [(e.start, e.end, e.label_) for e in d.ents]) for d in eager.pipe(texts)]
    assert script_pipeline(trained, tmp_path / "scripted") == ["tok2vec"]
    model_config = spacy.util.load_config(tmp_path / "scripted" / "config.cfg")["components"]["tok2vec"]["model"]
    assert model_config["@architectures"] == "spacy-encoder.ScriptedTok2Vec.v2"
    assert model_config["vectors_width"] == V
    scripted = spacy.load(tmp_path / "scripted")
    for (tensor, ents), doc in zip(expected, scripted.pipe(texts)):
        numpy.testing.assert_allclose(doc.tensor, tensor, atol=1e-4)
        assert [(e.start, e.end, e.label_) for e in doc.ents] == ents


STANDALONE = r'''
import json, sys
import numpy, torch
from spacy.attrs import ORTH
from spacy.lang.en import English
model_path, description_path, vectors_path, texts_path, out_path = sys.argv[1:]
info = json.load(open(description_path))
nlp = English()
nlp.vocab.vectors.from_disk(vectors_path)  # the pipeline's own vocab/vectors folder
table = nlp.vocab.vectors
texts = json.load(open(texts_path))
program = torch.jit.load(model_path) if info["format"] == "torchscript" else torch.export.load(model_path).module()
results = {}
with torch.no_grad():
    for i, text in enumerate(texts):
        doc = nlp.make_doc(text)
        ids = doc.to_array(info["attrs"]).astype("uint64").view("int64").reshape(len(doc), len(info["attrs"]))
        rows = table.find(keys=doc.to_array(ORTH).astype("uint64"))
        vectors = table.data[rows].astype("float32").reshape(len(doc), info["vectors_width"])
        vectors[rows < 0] = 0.0
        ids, vectors = torch.from_numpy(ids), torch.from_numpy(vectors)
        if info["format"] == "torchscript":
            out = program(ids, vectors)
        else:  # docs here fit in one window
            out = program(ids.unsqueeze(0), vectors.unsqueeze(0), torch.tensor([len(doc)]))[0]
        results[str(i)] = out.numpy()
numpy.savez(out_path, **results)
assert "spacy_encoder" not in sys.modules, "the standalone path imported spacy_encoder"
'''


@pytest.mark.parametrize("fmt", ["torchscript", "export"])
def test_export_with_vectors_reproduces_doc_tensor_without_spacy_encoder(trained, tmp_path, fmt):
    texts = [t for t, _ in NER_DATA] + ["Siemens"]
    if fmt == "torchscript":
        texts += [LONG_TEXT, ""]  # windows are stitched inside the TorchScript file
    expected = [d.tensor for d in spacy.load(trained).pipe(texts)]
    model_file = tmp_path / "encoder.pt"
    description = export_encoder(trained, model_file, component="tok2vec", fmt=fmt)
    assert description["vectors_width"] == V and "vectors" in description["inputs"]
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    script = tmp_path / "standalone.py"
    script.write_text(STANDALONE)
    args = [model_file, tmp_path / "encoder.pt.json", trained / "vocab", tmp_path / "texts.json", tmp_path / "out.npz"]
    subprocess.run([sys.executable, str(script), *map(str, args)], check=True, timeout=300, cwd=tmp_path)
    got = numpy.load(tmp_path / "out.npz")
    for i, tensor in enumerate(expected):
        numpy.testing.assert_allclose(got[str(i)], tensor, atol=1e-4)


def test_vectors_let_the_model_classify_words_it_never_saw():
    """Words of a class share a direction in vector space; training sees some of them,
    the test only others. With vectors the model generalises; the hashed features of
    the unseen words carry no such information."""
    train_words = {"good": 1, "great": 1, "fine": 1, "nice": 1, "bad": 0, "awful": 0, "poor": 0, "sad": 0}
    test_words = {"superb": 1, "lovely": 1, "dreadful": 0, "grim": 0}
    config = load_config(REPO / "configs" / "textcat_vectors.cfg")
    config["training"]["optimizer"]["learn_rate"] = 0.001
    config["components"]["tok2vec"]["model"].update({**SMALL, "feature_dropout": 0.0, "vectors_dropout": 0.0})
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    rng = numpy.random.default_rng(0)
    direction = rng.normal(size=(V,)).astype("float32")
    for word, label in {**train_words, **test_words}.items():
        noise = 0.3 * rng.normal(size=(V,)).astype("float32")
        nlp.vocab.set_vector(word, (direction if label else -direction) + noise)
    exs = [
        Example.from_dict(nlp.make_doc(f"it was {w}"), {"cats": {"POSITIVE": float(y), "NEGATIVE": float(1 - y)}})
        for w, y in train_words.items()
    ]
    train(nlp, exs, 30)
    for word, label in test_words.items():
        cats = nlp(f"it was {word}").cats
        assert (cats["POSITIVE"] > 0.5) == bool(label), (word, cats)


def test_spacy_pretrain_with_the_vectors_objective_reaches_training(tmp_path):
    """The *_vectors configs pretrain with `spacy.PretrainVectors.v1`: the loss falls,
    and `init_tok2vec` loads the weights into a training with the same vectors."""
    import srsly
    from spacy.training.pretrain import pretrain

    texts = [t for t, _ in NER_DATA + TEXTCAT_DATA] + [LONG_TEXT]
    vocab_nlp = spacy.blank("en")
    add_vectors(vocab_nlp, sorted({t.text for text in texts for t in vocab_nlp.make_doc(text)}))
    vocab_nlp.to_disk(tmp_path / "vectors")
    srsly.write_jsonl(tmp_path / "raw.jsonl", [{"text": t} for t in texts * 3])
    model = {f"components.tok2vec.model.{k}": v for k, v in SMALL.items()}
    overrides = {
        "paths.raw_text": str(tmp_path / "raw.jsonl"),
        "paths.vectors": str(tmp_path / "vectors"),
        "pretraining.max_epochs": 3,
        **model,
    }
    config = load_config(REPO / "configs" / "ner_vectors.cfg", overrides=overrides, interpolate=True)
    assert config["pretraining"]["objective"]["@architectures"] == "spacy.PretrainVectors.v1"
    (tmp_path / "pretrain").mkdir()
    pretrain(config, tmp_path / "pretrain", silent=True)
    log = list(srsly.read_jsonl(tmp_path / "pretrain" / "log.jsonl"))
    epoch_losses = [row["epoch_loss"] for row in log[:3]]
    assert epoch_losses[0] > epoch_losses[1] > epoch_losses[2], epoch_losses
    weights = tmp_path / "pretrain" / "model2.bin"

    def tok2vec(init_tok2vec):
        config = load_config(
            REPO / "configs" / "ner_vectors.cfg",
            overrides={**overrides, "paths.init_tok2vec": init_tok2vec},
            interpolate=True,
        )
        nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
        nlp.initialize(lambda: ner_examples(nlp))
        return nlp.get_pipe("tok2vec").model, nlp

    reference, nlp = tok2vec(None)
    doc = nlp.make_doc("Angela Merkel visited Paris .")
    untrained = reference.predict([doc])[0]
    reference.from_bytes(weights.read_bytes())
    expected = reference.predict([doc])[0]
    loaded, nlp = tok2vec(str(weights))
    numpy.testing.assert_allclose(loaded.predict([nlp.make_doc(doc.text)])[0], expected, atol=1e-5)
    assert not numpy.allclose(untrained, expected, atol=1e-3)


def test_vectors_dropout_zeroes_whole_vectors_at_its_rate_in_training_only():
    from spacy_encoder.pytorch import HashVectorEmbed

    torch.manual_seed(0)
    embed = HashVectorEmbed([50, 20], width=16, n_hashes=1, dropout=0.0, feature_dropout=0.0, vectors_width=V, vectors_dropout=0.3)
    ids = torch.randint(0, 10_000, (4, 500, 2))
    vectors = torch.randn(4, 500, V)
    without = embed.eval()(ids, torch.zeros_like(vectors))
    numpy.testing.assert_array_equal(embed(ids, vectors).detach(), embed(ids, vectors).detach())  # eval: no dropout
    assert not torch.isclose(embed(ids, vectors), without, atol=1e-6).all(dim=-1).any()
    embed.train()
    dropped = torch.isclose(embed(ids, vectors), without, atol=1e-6).all(dim=-1)  # (4, 500): whole vectors
    share = dropped.float().mean().item()
    assert abs(share - 0.3) < 5 * (0.3 * 0.7 / 2000) ** 0.5, share


def test_inspection_of_a_vectors_pipeline_equals_doc_tensor(trained):
    from spacy_encoder import inspect as insp

    nlp = spacy.load(trained)
    name, node = insp.find_tok2vec(nlp)
    for text in ("I like London", LONG_TEXT):
        inspection = insp.inspect_doc(node, insp.doc_for(nlp, text, name), component=name)
        numpy.testing.assert_allclose(inspection.output, nlp(text).tensor, atol=1e-4)
    window = insp.inspect_window(node, insp.doc_for(nlp, LONG_TEXT, name), token=5)
    assert window.weights and window.weights[0].shape[-1] == SMALL["max_length"]


# --- Lowercased tables (GloVe): cased keys onto the same rows -----------------------


def test_case_keys_send_cased_tokens_to_the_lowercase_row():
    from spacy_encoder.static_vectors import add_case_keys

    nlp = spacy.blank("en")
    add_vectors(nlp, ["berlin", "paris", "Paris", "u.s.", "42"])
    vectors, strings = nlp.vocab.vectors, nlp.vocab.strings
    rows = {w: vectors.find(key=strings[w]) for w in ["berlin", "paris", "Paris", "u.s."]}
    counts = add_case_keys(vectors, strings)
    assert counts["keys"] == 5 and counts["rows"] == 5 and vectors.shape == (5, V)
    assert vectors.find(key=strings["Berlin"]) == rows["berlin"]
    assert vectors.find(key=strings["BERLIN"]) == rows["berlin"]
    assert vectors.find(key=strings["PARIS"]) == rows["paris"]
    assert vectors.find(key=strings["Paris"]) == rows["Paris"] != rows["paris"], "a cased vector of its own is kept"
    assert vectors.find(key=strings["U.S."]) == rows["u.s."]
    # berlin: Berlin, BERLIN; paris: PARIS (Paris exists); Paris: none (not lowercase);
    # u.s.: U.S. (title and upper agree) and U.s.; 42: none
    assert counts["added"] == 2 + 1 + 0 + 2 + 0
    # the model reads them: "Berlin" gets berlin's vector
    doc = nlp("Berlin BERLIN Rome")
    model = spacy.registry.resolve({"m": {"@architectures": "spacy-encoder.TransformerTok2Vec.v2", **SMALL}})["m"]
    looked_up = static_vectors(model, [doc])
    numpy.testing.assert_array_equal(looked_up[0], vectors.data[rows["berlin"]])
    numpy.testing.assert_array_equal(looked_up[1], vectors.data[rows["berlin"]])
    assert not looked_up[2].any()


def test_case_vectors_command_saves_a_cased_copy_and_fails_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from spacy_encoder.cli import app

    nlp = spacy.blank("en")
    add_vectors(nlp, ["berlin", "geneva"])
    nlp.to_disk(tmp_path / "glove")
    runner = CliRunner()
    result = runner.invoke(app, ["vectors", "case", str(tmp_path / "glove"), str(tmp_path / "cased")])
    assert result.exit_code == 0, result.output
    assert "2 keys + 4 cased forms, 2 rows" in " ".join(result.output.split())
    cased = spacy.load(tmp_path / "cased")
    assert cased.vocab.vectors.find(key=cased.vocab.strings["GENEVA"]) == cased.vocab.vectors.find(key=cased.vocab.strings["geneva"]) >= 0
    assert spacy.load(tmp_path / "glove").vocab.vectors.find(key="Geneva") == -1, "the input is not changed"
    result = runner.invoke(app, ["vectors", "case", str(tmp_path / "missing"), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "missing: no pipeline there" in " ".join(result.output.split())
    spacy.blank("en").to_disk(tmp_path / "novectors")
    result = runner.invoke(app, ["vectors", "case", str(tmp_path / "novectors"), str(tmp_path / "out")])
    assert result.exit_code == 1 and "has no keys" in result.output


def test_vector_coverage_counts_the_tokens_of_seen_and_unseen_names(tmp_path):
    """`spacy-encoder vector-coverage`: by ORTH, as the encoder looks vectors up, a
    lowercase table misses "Berlin"; its `case-vectors` copy reaches it. "Merkel" is a
    name of the training corpus, "Berlin" is not."""
    from spacy.tokens import DocBin
    from typer.testing import CliRunner

    from spacy_encoder.cli import app

    nlp = spacy.blank("en")

    def corpus(name, text, ents):
        doc = Example.from_dict(nlp.make_doc(text), {"entities": ents}).reference
        DocBin(docs=[doc]).to_disk(tmp_path / name)

    corpus("train.spacy", "Merkel spoke .", [(0, 6, "PER")])
    corpus("test.spacy", "Merkel visited Berlin today", [(0, 6, "PER"), (15, 21, "LOC")])
    glove = spacy.blank("en")
    add_vectors(glove, ["merkel", "berlin", "visited", "Merkel"])
    glove.to_disk(tmp_path / "glove")
    runner = CliRunner()
    assert runner.invoke(app, ["vectors", "case", str(tmp_path / "glove"), str(tmp_path / "cased")]).exit_code == 0
    args = ["vectors", "coverage", str(tmp_path / "train.spacy"), str(tmp_path / "test.spacy"), str(tmp_path / "glove"), str(tmp_path / "cased")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "| vectors | rows | keys | all tokens (4) | tokens of seen names (1) | tokens of unseen names (1) |"
    assert lines[2] == f"| {tmp_path / 'glove'} | 4 | 4 | 50.0% | 100.0% | 0.0% |"
    assert lines[3] == f"| {tmp_path / 'cased'} | 4 | 9 | 75.0% | 100.0% | 100.0% |"
    result = runner.invoke(app, [*args[:4], str(tmp_path / "missing")])
    assert result.exit_code == 1 and "missing" in result.output


# --- Concatenated tables (GloVe-cased + en_core_web_md) ------------------------------


def test_concat_tables_puts_each_keys_rows_side_by_side_with_zeros_for_missing():
    from spacy_encoder.static_vectors import add_case_keys, concat_tables

    a, b = spacy.blank("en"), spacy.blank("en")
    add_vectors(a, ["berlin", "paris", "ORTH"], width=3, seed=1)  # "ORTH" is a symbol: a small id, not a hash
    add_case_keys(a.vocab.vectors, a.vocab.strings)  # Berlin, BERLIN, Paris, PARIS share berlin's / paris's row
    add_vectors(b, ["Berlin", "berlin", "Rome", "ORTH"], width=5, seed=2)
    data, rows, words = concat_tables([(a.vocab.vectors, a.vocab.strings), (b.vocab.vectors, b.vocab.strings)])
    assert data.shape[1] == 3 + 5 and len(words) == len(set(words)) == len(rows)
    assert set(words) == {"berlin", "Berlin", "BERLIN", "paris", "Paris", "PARIS", "Rome", "ORTH"}
    row = dict(zip(words, rows))

    def expect(nlp, word, width):
        return nlp.vocab.get_vector(word) if nlp.vocab.has_vector(word) else numpy.zeros(width, "float32")

    for word in words:
        numpy.testing.assert_array_equal(data[row[word]], numpy.concatenate([expect(a, word, 3), expect(b, word, 5)]), err_msg=word)
    # keys that share a row in every table share one; Berlin and berlin differ in b, so they do not
    assert row["paris"] == row["Paris"] == row["PARIS"] and row["BERLIN"] != row["Berlin"] != row["berlin"]
    assert data.shape[0] == len(set(rows)) == 6  # berlin, Berlin, BERLIN, paris*, Rome, ORTH
    assert not data[row["Rome"], :3].any() and not data[row["PARIS"], 3:].any()
    # the same tables in the other order give the same table with the columns swapped
    data2, rows2, words2 = concat_tables([(b.vocab.vectors, b.vocab.strings), (a.vocab.vectors, a.vocab.strings)])
    assert words2 == words
    numpy.testing.assert_array_equal(data2[rows2][:, :5], data[rows][:, 3:])
    with pytest.raises(ValueError, match="at least two"):
        concat_tables([(a.vocab.vectors, a.vocab.strings)])


def test_concat_vectors_command_writes_a_pipeline_the_encoder_reads_and_fails_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from spacy_encoder.cli import app

    for name, words, seed in [("a", ["berlin", "geneva"], 1), ("b", ["Berlin", "rome"], 2)]:
        nlp = spacy.blank("en")
        add_vectors(nlp, words, seed=seed)
        nlp.to_disk(tmp_path / name)
    runner = CliRunner()
    result = runner.invoke(app, ["vectors", "concat", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "ab")])
    assert result.exit_code == 0, result.output
    assert "4 keys on 4 rows of 16 (8 + 8) floats" in " ".join(result.output.split())
    ab = spacy.load(tmp_path / "ab")
    a, b = spacy.load(tmp_path / "a"), spacy.load(tmp_path / "b")
    numpy.testing.assert_array_equal(ab.vocab.get_vector("Berlin"), numpy.concatenate([numpy.zeros(V, "f"), b.vocab.get_vector("Berlin")]))
    numpy.testing.assert_array_equal(ab.vocab.get_vector("geneva"), numpy.concatenate([a.vocab.get_vector("geneva"), numpy.zeros(V, "f")]))
    model = spacy.registry.resolve({"m": {"@architectures": "spacy-encoder.TransformerTok2Vec.v2", **{**SMALL, "vectors_width": 2 * V}}})["m"]
    looked_up = static_vectors(model, [ab("Berlin rome Oslo")])
    numpy.testing.assert_array_equal(looked_up[1], ab.vocab.get_vector("rome"))
    assert looked_up.shape == (3, 2 * V) and not looked_up[2].any()
    result = runner.invoke(app, ["vectors", "concat", str(tmp_path / "a"), str(tmp_path / "missing"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and "missing: no pipeline there" in " ".join(result.output.split())
    spacy.blank("en").to_disk(tmp_path / "novectors")
    result = runner.invoke(app, ["vectors", "concat", str(tmp_path / "a"), str(tmp_path / "novectors"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and "novectors: the pipeline has no vectors" in " ".join(result.output.split())
    assert not (tmp_path / "out").exists(), "nothing is written after a failure"
