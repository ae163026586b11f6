"""Registry entries: every name resolves from the installed entry points, and bad
settings fail at config resolution with the field named."""
import importlib.metadata
import sys
import subprocess

import numpy
import pytest
import spacy
import torch
from confection import ConfigValidationError
from spacy.util import load_config

from spacy_encoder.nodes import torch_module

from .conftest import REPO, dropout_kinds


def our_entry_points():
    eps = importlib.metadata.entry_points(group="spacy_architectures")
    return [ep for ep in eps if ep.name.startswith("spacy-encoder.")]


def test_entry_points_are_installed():
    names = {ep.name for ep in our_entry_points()}
    assert {
        "spacy-encoder.TransformerTok2Vec.v1",
        "spacy-encoder.TransformerEncoder.v1",
        "spacy-encoder.TransformerEncoder.v2",
    } <= names


@pytest.mark.parametrize("name", sorted(ep.name for ep in our_entry_points()))
def test_every_registered_name_resolves(name):
    func = spacy.registry.architectures.get(name)
    assert callable(func)


@pytest.mark.parametrize(
    "group,registry,name",
    [
        ("spacy_callbacks", "callbacks", "spacy-encoder.StopCleanly.v1"),
        ("spacy_callbacks", "callbacks", "spacy-encoder.start_from_pretrained.v1"),
        ("spacy_callbacks", "callbacks", "spacy-encoder.start_from_pretrained.v2"),
        ("spacy_loggers", "loggers", "spacy-encoder.ThroughputLogger.v1"),
        ("spacy_architectures", "architectures", "spacy-encoder.TextCatReduce.v1"),
        ("spacy_misc", "misc", "spacy-encoder.pretrained_tok2vec.v1"),
    ],
)
def test_other_registered_names_resolve(group, registry, name):
    assert name in {ep.name for ep in importlib.metadata.entry_points(group=group)}
    assert callable(getattr(spacy.registry, registry).get(name))


@pytest.mark.timeout(120)
def test_names_resolve_without_importing_the_package():
    code = (
        "import sys, spacy\n"
        "f = spacy.registry.architectures.get('spacy-encoder.TransformerTok2Vec.v1')\n"
        "print(f.__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "spacy_encoder.architectures"


@pytest.mark.parametrize("config_name", ["ner", "textcat", "textcat_multilabel"])
@pytest.mark.parametrize("variant", ["", "_pretrained", "_vectors", "_vectors_pretrained"])
def test_configs_build(config_name, variant):
    config = load_config(REPO / "configs" / f"{config_name}{variant}.cfg")
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    assert nlp.pipe_names == ["tok2vec", config_name]


@pytest.mark.parametrize(
    "setting,value,field",
    [
        ("n_heads", 5, "n_heads"),
        ("depth", 0, "depth"),
        ("positions", "alibi", "positions"),
        ("window_stride", 1024, "window_stride"),
        ("attrs", ["NORM", "COLOUR", "SUFFIX", "SHAPE"], "attrs"),
        ("rows", [100, 100], "rows"),
        ("feature_dropout", 1.5, "feature_dropout"),
        ("feature_dropout", [0.3, 0.1], "feature_dropout"),  # one rate per attribute
        ("feature_dropout", [0.3, 0.1, 1.0, 0.1], "feature_dropout"),
        ("embed_dropout", -0.1, "embed_dropout"),
        ("fast_dropout", "sometimes", "fast_dropout"),
        ("width", "wide", "width"),  # wrong type: confection's own validation
    ],
)
def test_bad_settings_fail_at_startup_naming_the_field(setting, value, field):
    config = load_config(REPO / "configs" / "ner.cfg")
    config["components"]["tok2vec"]["model"][setting] = value
    with pytest.raises(ConfigValidationError) as err:
        spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    assert field in str(err.value)


@pytest.mark.timeout(300)
def test_spacy_train_reports_bad_setting_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "spacy", "train", str(REPO / "configs" / "ner.cfg"),
         "--components.tok2vec.model.n_heads", "5",
         "--paths.train", str(tmp_path / "x.spacy"), "--paths.dev", str(tmp_path / "x.spacy")],
        capture_output=True, text=True,
    )
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "n_heads" in output and "divisible" in output
    assert "Traceback" not in output


def _tiny_tok2vec():
    from spacy_encoder.architectures import build_transformer_tok2vec_v1

    return build_transformer_tok2vec_v1(
        width=16, depth=1, n_heads=2, ff_width=32, attrs=["NORM"], rows=[50], n_hashes=1, positions="rotary",
        local_window=3, norm_first=True, dropout=0.0, embed_dropout=0.0, max_length=16, window_stride=12,
        mixed_precision=False, grad_scaler_config={}, torchscript=False,
    )


@pytest.mark.parametrize("exclusive", [True, False])
def test_textcat_reduce_equals_spacys_and_pools_empty_docs(exclusive):
    """Ours = spaCy's TextCatReduce.v1 with the same tok2vec and weights, on docs with
    tokens; with max/first/last pooling spaCy's raises on an empty doc, ours does not."""
    import numpy
    from spacy.ml.models.textcat import build_reduce_text_classifier

    from spacy_encoder.architectures import build_textcat_reduce_v1

    nlp = spacy.blank("en")
    docs = [nlp("a good film"), nlp("bad"), nlp("a film longer than the window of sixteen tokens, " * 3)]
    empty = nlp("")
    poolings = dict(use_reduce_first=True, use_reduce_last=True, use_reduce_max=True, use_reduce_mean=True)
    tok2vec = _tiny_tok2vec()
    ours = build_textcat_reduce_v1(tok2vec, exclusive_classes=exclusive, nO=3, **poolings)
    theirs = build_reduce_text_classifier(tok2vec, exclusive_classes=exclusive, nO=3, **poolings)
    ours.initialize(X=docs)
    theirs.initialize(X=docs)
    out_ours, out_theirs = ours.get_ref("output_layer"), theirs.get_ref("output_layer")
    rng = numpy.random.default_rng(0)
    for param in ("W", "b"):
        value = rng.normal(size=out_ours.get_param(param).shape).astype("f")
        out_ours.set_param(param, value)
        out_theirs.set_param(param, value.copy())
    numpy.testing.assert_allclose(ours.predict(docs), theirs.predict(docs), atol=1e-6)
    with pytest.raises(Exception):
        theirs.predict([empty])
    scores = ours.predict([empty] + docs)
    assert numpy.isfinite(scores).all()
    numpy.testing.assert_allclose(scores[1:], ours.predict(docs), atol=1e-6)
    # An empty doc is pooled as one zero vector: every pooling of it is zero, so its
    # scores are the output layer's on a zero input.
    expected = out_ours.predict(ours.ops.alloc2f(1, out_ours.get_dim("nI")))
    if not exclusive:  # Linear, then spaCy's Logistic
        expected = 1.0 / (1.0 + numpy.exp(-expected))
    numpy.testing.assert_allclose(scores[:1], expected, atol=1e-6)
    assert not numpy.allclose(scores[0], scores[1])
    # Training through an empty doc: the encoder's gradients are those of the docs with
    # tokens alone (the empty doc's pooled vector is a constant).
    def encoder_grads(batch):
        torch_model = torch_module(tok2vec)
        torch_model.zero_grad()
        Y, backprop = ours.begin_update(batch)
        backprop(ours.ops.alloc2f(*Y.shape) + 1.0)
        return {name: p.grad.clone() for name, p in torch_model.named_parameters()}

    with_empty, without = encoder_grads([empty] + docs), encoder_grads(docs)
    assert with_empty.keys() == without.keys()
    for name in without:
        torch.testing.assert_close(with_empty[name], without[name], atol=1e-6, rtol=1e-5)
    assert without["embed.table.weight"].abs().sum() > 0


@pytest.mark.parametrize("config_name", ["ner", "ner_vectors"])
def test_fast_dropout_is_opt_in_and_survives_initialize(config_name):
    """fast_dropout = true swaps every nn.Dropout of the torch module for FastDropout,
    also in the module that initialize draws afresh; the default leaves nn.Dropout (a
    released version's random stream, and so its trained weights, never change)."""
    from spacy.training import Example

    for fast in (False, True):
        config = load_config(REPO / "configs" / f"{config_name}.cfg", interpolate=True)
        model = config["components"]["tok2vec"]["model"]
        model.update(depth=1)  # width stays: the listener took it by interpolation
        if fast:
            model["fast_dropout"] = True
        nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
        for word in ("Ada", "London"):  # a table for the vectors config (ignored by the other)
            nlp.vocab.set_vector(word, numpy.full(300, 0.5, dtype="f"))
        doc = nlp.make_doc("Ada Lovelace lived in London .")
        example = Example.from_dict(doc, {"entities": ["B-PER", "L-PER", "O", "O", "U-LOC", "O"]})
        nlp.initialize(lambda: [example])
        names = dropout_kinds(nlp)
        assert names and set(names) == ({"FastDropout"} if fast else {"Dropout"})
        losses = nlp.update([example], losses={})
        assert numpy.isfinite(losses["ner"])
