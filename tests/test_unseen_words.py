"""`spacy-encoder.TransformerTok2Vec.v3`: the settings for words the training data never
showed. Its defaults compute what v2 computes; `mix_pieces` mixes the features with a
maxout; `rare_word_dropout` gives rare (training) and unknown (inference) NORMs one id,
from training counts that the `count_training_words` callback writes and the pipeline
saves."""
import numpy
import pytest
import spacy
import torch
from confection import ConfigValidationError
from spacy.attrs import NORM
from spacy.tokens import DocBin
from spacy.util import load_config, load_model_from_config

from spacy_encoder.nodes import TOK2VEC, encoder_nodes, torch_module
from spacy_encoder.rare_words import RARE_COUNT, UNKNOWN_WORD, count_norms, lookup_counts, replace_rare

from .conftest import REPO
from .test_training import NER_DATA
from .test_vectors import SMALL, V, add_vectors, ner_examples

V3 = dict(SMALL, attrs=["NORM", "PREFIX", "SUFFIX", "SHAPE"], rows=[97, 31, 41, 23])
# Two words no training text has, alike in PREFIX (first letter), SUFFIX (last three)
# and SHAPE ("Xxxxx"): only their NORMs tell them apart.
TWINS = ("Zaaaaxyz", "Zbbbbxyz")


def build(name, **args):
    return spacy.registry.architectures.get(name)(**args)


def nlp_with_vectors():
    nlp = spacy.blank("en")
    add_vectors(nlp, sorted({t.text for text, _ in NER_DATA for t in nlp.make_doc(text)}))
    return nlp


def test_counts_are_the_norms_of_the_corpus():
    nlp = spacy.blank("en")
    docs = [nlp("the cat saw The dog"), nlp(""), nlp("a cat")]
    ids, counts = count_norms(docs)
    assert list(ids) == sorted(ids)
    by_word = {nlp.vocab.strings[int(i)]: int(c) for i, c in zip(ids, counts)}
    assert by_word == {"the": 2, "cat": 2, "saw": 1, "dog": 1, "a": 1}
    column = numpy.array([nlp.vocab.strings["cat"], nlp.vocab.strings.add("never")], dtype="uint64")
    assert list(lookup_counts(ids, counts, column)) == [2, 0]
    assert list(lookup_counts(ids[:0], counts[:0], column)) == [0, 0]


def test_rare_words_are_replaced_at_the_rate_in_training_and_unknown_ones_at_inference():
    nlp = spacy.blank("en")
    train = [nlp("common common common rare")]
    ids, counts = count_norms(train)
    doc = nlp(" ".join(["common", "rare", "unknown"] * 2000))
    features = doc.to_array([NORM, NORM]).astype("uint64").view("int64")  # column 1 is left alone
    unk = numpy.uint64(UNKNOWN_WORD).view("int64")

    inference = replace_rare(features, 0, ids, counts, 0.5, is_train=False)
    assert (inference[2::3, 0] == unk).all() and (inference[0::3, 0] != unk).all() and (inference[1::3, 0] != unk).all()
    assert (inference[:, 1] == features[:, 1]).all() and (features[:, 0] != unk).all()  # a copy

    training = replace_rare(features, 0, ids, counts, 0.5, is_train=True, random=numpy.random.RandomState(0))
    assert not (training[0::3, 0] == unk).any()  # seen 3 times: never
    assert RARE_COUNT == 1
    for start in (1, 2):  # seen once, never seen: both rare in training
        share = (training[start::3, 0] == unk).mean()
        assert 0.45 < share < 0.55, share
    assert replace_rare(features, 0, ids, counts, 0.5, is_train=True, random=numpy.random.RandomState(0)).tolist() == training.tolist()


def test_v3_with_its_defaults_computes_what_v2_computes():
    nlp = nlp_with_vectors()
    docs = [nlp(text) for text, _ in NER_DATA] + [nlp(" ".join(TWINS))]
    v2 = build("spacy-encoder.TransformerTok2Vec.v2", **V3)
    v3 = build("spacy-encoder.TransformerTok2Vec.v3", **V3)
    v2.initialize(X=docs)
    v3.initialize(X=docs)
    torch_module(v3).load_state_dict(torch_module(v2).state_dict())
    for a, b in zip(v2.predict(docs), v3.predict(docs)):
        assert numpy.array_equal(a, b)
    assert set(v3.attrs) == set(v2.attrs)  # no rare-word attrs unless asked for


def test_a_maxout_mix_is_the_max_of_its_pieces_and_scripts_alike():
    nlp = nlp_with_vectors()
    docs = [nlp(text) for text, _ in NER_DATA]
    models = []
    for torchscript in (False, True):
        torch.manual_seed(0)  # the same initial weights; scripting draws no numbers
        models.append(build("spacy-encoder.TransformerTok2Vec.v3", **V3, mix_pieces=3, torchscript=torchscript))
        models[-1].initialize(X=docs)
    eager, scripted = models
    assert isinstance(torch_module(scripted), torch.jit.ScriptModule)
    assert torch_module(eager).embed.mix.weight.shape[0] == 3 * SMALL["width"]
    for a, b in zip(eager.predict(docs), scripted.predict(docs)):
        numpy.testing.assert_allclose(a, b, atol=1e-5)
    # Pieces 1 and 2 of every unit far below piece 0: the maxout is piece 0's linear mix.
    linear = build("spacy-encoder.TransformerTok2Vec.v3", **V3)
    linear.initialize(X=docs)
    state = torch_module(linear).state_dict()
    with torch.no_grad():
        weight = state["embed.mix.weight"].repeat_interleave(3, dim=0)
        bias = state["embed.mix.bias"].repeat_interleave(3, dim=0)
        bias[1::3] -= 1e4
        bias[2::3] -= 1e4
    torch_module(eager).load_state_dict({**state, "embed.mix.weight": weight, "embed.mix.bias": bias})
    for a, b in zip(linear.predict(docs), eager.predict(docs)):
        numpy.testing.assert_allclose(a, b, atol=1e-5)


def test_bad_v3_settings_name_the_field():
    with pytest.raises(ConfigValidationError, match="mix_pieces"):
        build("spacy-encoder.TransformerTok2Vec.v3", **V3, mix_pieces=0)
    with pytest.raises(ConfigValidationError, match="mix_pieces"):
        build("spacy-encoder.TransformerTok2Vec.v3", **dict(V3, vectors_width=0), mix_pieces=3)
    with pytest.raises(ConfigValidationError, match="rare_word_dropout"):
        build("spacy-encoder.TransformerTok2Vec.v3", **V3, rare_word_dropout=1.0)
    with pytest.raises(ConfigValidationError, match="NORM"):
        build("spacy-encoder.TransformerTok2Vec.v3", **dict(V3, attrs=["ORTH", "SHAPE"], rows=[50, 20]), rare_word_dropout=0.5)


def v3_nlp(tmp_path, callback=True, architecture="spacy-encoder.TransformerTok2Vec.v3", **model):
    """A small `ner_vectors` pipeline on v3 (or `architecture`) with rare-word dropout,
    and the training corpus (NER_DATA) written where the callback reads it."""
    train = tmp_path / "train.spacy"
    overrides = {f"components.tok2vec.model.{k}": v for k, v in {**SMALL, **model}.items()}
    overrides["components.tok2vec.model.@architectures"] = architecture
    overrides["paths.train"] = str(train)
    config = load_config(REPO / "configs" / "ner_vectors.cfg", overrides=overrides, interpolate=True)
    config["training"]["optimizer"]["learn_rate"] = 0.001
    config["initialize"]["before_init"] = (
        {"@callbacks": "spacy-encoder.count_training_words.v1", "path": str(train)} if callback else None
    )
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    add_vectors(nlp, sorted({t.text for text, _ in NER_DATA for t in nlp.make_doc(text)}))
    DocBin(docs=[eg.reference for eg in ner_examples(nlp)]).to_disk(train)
    return nlp


def test_rare_word_dropout_without_the_counting_callback_trains_as_v2_and_says_so_once(tmp_path, caplog):
    nlp = v3_nlp(tmp_path, callback=False, rare_word_dropout=0.5)
    optimizer = nlp.initialize(lambda: ner_examples(nlp))
    with caplog.at_level("WARNING", logger="spacy_encoder"):
        for _ in range(2):
            nlp.update(ner_examples(nlp), sgd=optimizer)
    warnings = [r.getMessage() for r in caplog.records if "count_training_words" in r.getMessage()]
    assert len(warnings) == 1 and "does nothing" in warnings[0] and "\n" not in warnings[0]
    a, b = (nlp.get_pipe("tok2vec").model.predict([nlp.make_doc(f"{w} visited Berlin .")])[0] for w in TWINS)
    assert not numpy.allclose(a, b, atol=1e-4)  # no counts: unknown words keep their own rows


def test_a_null_corpus_path_counts_nothing_and_says_so(tmp_path, caplog):
    nlp = v3_nlp(tmp_path, rare_word_dropout=0.5)
    nlp.config["initialize"]["before_init"]["path"] = None
    from spacy_encoder.rare_words import create_count_training_words_v1

    with caplog.at_level("WARNING", logger="spacy_encoder"):
        create_count_training_words_v1(None)(nlp)
    assert "path is null" in caplog.text


def test_unknown_words_share_one_row_and_the_counts_are_saved(tmp_path):
    nlp = v3_nlp(tmp_path, rare_word_dropout=0.5)
    optimizer = nlp.initialize(lambda: ner_examples(nlp))
    for _ in range(3):
        nlp.update(ner_examples(nlp), sgd=optimizer)
    node = next(encoder_nodes(nlp.get_pipe("tok2vec").model, (TOK2VEC,)))
    expected_ids, _ = count_norms(eg.reference for eg in ner_examples(nlp))
    assert list(node.attrs["norm_ids"]) == list(expected_ids)
    # Twins without vectors, alike but for NORM: the same output where NORM is unknown.
    a, b = (nlp.get_pipe("tok2vec").model.predict([nlp.make_doc(f"{w} visited Berlin .")])[0] for w in TWINS)
    numpy.testing.assert_allclose(a, b, atol=1e-6)
    known = [nlp.get_pipe("tok2vec").model.predict([nlp.make_doc(f"{w} visited Berlin .")])[0] for w in ("Apple", "Berlin")]
    assert not numpy.allclose(known[0], known[1], atol=1e-3)
    nlp.to_disk(tmp_path / "saved")
    loaded = spacy.load(tmp_path / "saved")
    loaded_node = next(encoder_nodes(loaded.get_pipe("tok2vec").model, (TOK2VEC,)))
    assert list(loaded_node.attrs["norm_ids"]) == list(node.attrs["norm_ids"])
    text = f"{TWINS[0]} met Angela Merkel in Berlin ."
    numpy.testing.assert_allclose(loaded(text).tensor, nlp(text).tensor, atol=1e-6)


def test_without_rare_word_dropout_unknown_twins_differ():
    nlp = nlp_with_vectors()
    model = build("spacy-encoder.TransformerTok2Vec.v3", **V3)
    model.initialize(X=[nlp(text) for text, _ in NER_DATA])
    a, b = (model.predict([nlp.make_doc(f"{w} visited Berlin .")])[0] for w in TWINS)
    assert not numpy.allclose(a, b, atol=1e-4)


@pytest.fixture(scope="module")
def trained_v3(tmp_path_factory):
    """A small v3 pipeline with both settings on, trained a few steps and saved."""
    tmp_path = tmp_path_factory.mktemp("v3")
    nlp = v3_nlp(tmp_path, rare_word_dropout=0.5, mix_pieces=3)
    optimizer = nlp.initialize(lambda: ner_examples(nlp))
    for _ in range(5):
        nlp.update(ner_examples(nlp), sgd=optimizer)
    nlp.to_disk(tmp_path / "eager")
    return tmp_path / "eager"


TEXTS = [f"{TWINS[0]} met Angela Merkel in Berlin .", f"{TWINS[1]} met Angela Merkel in Berlin .", "Apple"]


@pytest.mark.parametrize("form", ["script", "onnx"])
def test_deployed_v3_pipelines_keep_the_unknown_word_map(trained_v3, tmp_path, form):
    from spacy_encoder.deploy import script_pipeline

    if form == "onnx":
        pytest.importorskip("onnxruntime")
        from spacy_encoder.onnx_export import onnx_pipeline as convert
    else:
        convert = script_pipeline
    convert(trained_v3, tmp_path / form)
    eager, deployed = spacy.load(trained_v3), spacy.load(tmp_path / form)
    node = next(n for n in deployed.get_pipe("tok2vec").model.walk() if "norm_ids" in n.attrs)
    assert node.attrs["rare_word_dropout"] == 0.5 and len(node.attrs["norm_ids"]) > 0
    docs = list(deployed.pipe(TEXTS))
    for a, b in zip(eager.pipe(TEXTS), docs):
        numpy.testing.assert_allclose(a.tensor, b.tensor, atol=1e-4)
    numpy.testing.assert_allclose(docs[0].tensor, docs[1].tensor, atol=1e-5)  # the twins: one unknown NORM


def test_a_standalone_export_of_v3_with_rare_words_is_refused_in_one_line(trained_v3, tmp_path):
    from spacy_encoder.deploy import DeployError, export_encoder

    with pytest.raises(DeployError) as info:
        export_encoder(trained_v3, tmp_path / "encoder.pt", component="tok2vec", fmt="torchscript")
    assert "deploy script" in str(info.value) and "\n" not in str(info.value)


def test_the_counting_callback_without_rare_word_dropout_counts_nothing_and_says_so(tmp_path, caplog):
    nlp = v3_nlp(tmp_path, rare_word_dropout=0.0, mix_pieces=3)
    with caplog.at_level("WARNING", logger="spacy_encoder"):
        nlp.initialize(lambda: ner_examples(nlp))
    assert "nothing counted" in caplog.text
    node = next(encoder_nodes(nlp.get_pipe("tok2vec").model, (TOK2VEC,)))
    assert "norm_ids" not in node.attrs
