"""Behaviour freeze: a small fixed-seed golden output per released registered name.

A released `.vN` never changes behaviour (STYLE.md); a change is a new `.vN+1`. Each
case builds a tiny model through the registry, sets its weights from a fixed seed per
parameter name (so that the forward maths is frozen even if construction order
moves), and compares a few numbers of its outputs with `tests/golden/released.json`. The
weights' names and shapes (what a saved pipeline must load into) and the outputs at
initialization under a fixed seed are frozen too.

Regenerate only for a new name, never to make a released one pass:

    python -m pytest tests/test_golden.py --regen-golden
"""
import json
import zlib
from typing import Any, Dict, List

import numpy
import pytest
import spacy
import torch
from thinc.api import Model

from .conftest import REPO

GOLDEN = REPO / "tests" / "golden" / "released.json"
ATTRS = ["NORM", "PREFIX", "SUFFIX", "SHAPE"]
WORDS = (
    "010 is the tenth album from Japanese Punk Techno band The Mad Capsule Markets . This album "
    "proved to be more commercial and more techno-based than Osc-Dis , with heavily synthesized "
    "songs like Introduction 010 and Come . Founding member Kojima Minoru played guitar on Good Day"
)
TEXTS = [WORDS, "Berlin", "", "the European Commission said on Thursday"]
WINDOW = dict(max_length=16, window_stride=12)
TOK2VEC = dict(
    width=16, depth=2, n_heads=2, ff_width=32, attrs=ATTRS, rows=[97, 31, 41, 23], n_hashes=2,
    positions="rotary", local_window=3, norm_first=True, dropout=0.1, embed_dropout=0.1,
    mixed_precision=False, grad_scaler_config={}, torchscript=False, feature_dropout=[0.3, 0.1, 0.2, 0.1],
    **WINDOW,
)
TOK2VEC_POSTNORM = dict(
    TOK2VEC, positions="learned", local_window=0, norm_first=False, n_hashes=1, dropout=0.0, embed_dropout=0.0,
    feature_dropout=0.0,
)
ENCODER = dict(
    width=16, depth=2, n_heads=4, ff_width=24, positions="sinusoidal", local_window=3, norm_first=True,
    dropout=0.1, mixed_precision=False, grad_scaler_config={}, torchscript=False, **WINDOW,
)


@pytest.fixture(scope="module")
def nlp():
    return spacy.blank("en")


@pytest.fixture(scope="module")
def golden():
    return json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}


def build(name: str, **args) -> Model:
    return spacy.registry.architectures.get(name)(**args)


def torch_modules(model: Model) -> List[torch.nn.Module]:
    return [shim._model for node in model.walk() for shim in node.shims]


def set_weights(model: Model) -> None:
    """Every torch parameter from a seed of its own name: independent of the order in
    which the module was built."""
    for module in torch_modules(model):
        with torch.no_grad():
            for name, param in module.named_parameters():
                generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
                value = torch.randn(param.shape, generator=generator) * 0.3
                param.copy_(value + 1.0 if "norm.weight" in name else value)


def summary(arrays) -> Dict[str, Any]:
    out = []
    for a in arrays:
        a = numpy.asarray(a, dtype="float64")
        flat = a.reshape(-1)
        out.append(
            {
                "shape": list(a.shape),
                "sum": float(flat.sum()),
                "abs_sum": float(numpy.abs(flat).sum()),
                "weighted_sum": float((flat * numpy.cos(numpy.arange(flat.size))).sum()),
                "head": flat[:6].tolist(),
                "tail": flat[-6:].tolist(),
            }
        )
    return {"outputs": out}


def layout(model: Model) -> Dict[str, Any]:
    state = {}
    for i, module in enumerate(torch_modules(model)):
        for name, value in module.state_dict().items():
            state[f"{i}.{name}"] = list(value.shape)
            if value.dtype == torch.int64:  # the hash coefficients are part of the weights
                state[f"{i}.{name}.sum"] = int(value.sum())
    return {"state": state}


def check(request, golden, key: str, record: Dict[str, Any]) -> None:
    if request.config.getoption("--regen-golden"):
        data = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
        data[key] = record
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        return
    assert key in golden, f"no golden record {key!r}: run with --regen-golden for a NEW name only"
    expected = golden[key]
    assert record.get("state") == expected.get("state"), f"{key}: the weights' names or shapes changed"
    assert len(record["outputs"]) == len(expected["outputs"])
    for got, want in zip(record["outputs"], expected["outputs"]):
        assert got["shape"] == want["shape"], key
        for field in ("abs_sum", "head", "tail"):
            numpy.testing.assert_allclose(got[field], want[field], rtol=1e-5, atol=1e-5, err_msg=f"{key} {field}")
        # Signed sums cancel: float32 rounding of ~1e-8 per element (other thread counts,
        # other kernels) can move them by more than 1e-5 of their own size. Bound their
        # error by the elements' magnitude instead: 1e-6 of the sum of |x|.
        for field in ("sum", "weighted_sum"):
            numpy.testing.assert_allclose(got[field], want[field], rtol=0, atol=1e-6 * want["abs_sum"], err_msg=f"{key} {field}")


def tok2vec_record(model: Model, docs, seed: int = 0) -> Dict[str, Any]:
    """Predictions, then one training pass under a fixed seed (dropout and word
    dropout drawn from it)."""
    predicted = model.predict(docs)
    torch.manual_seed(seed)
    trained, _ = model.begin_update(docs)
    return {**summary(list(predicted) + list(trained)), **layout(model)}


@pytest.mark.parametrize("variant", ["prenorm_rotary", "postnorm_learned"])
def test_transformer_tok2vec_v1(request, golden, nlp, variant):
    args = TOK2VEC if variant == "prenorm_rotary" else TOK2VEC_POSTNORM
    model = build("spacy-encoder.TransformerTok2Vec.v1", **args)
    model.initialize()
    set_weights(model)
    check(request, golden, f"TransformerTok2Vec.v1/{variant}", tok2vec_record(model, [nlp(t) for t in TEXTS]))


def test_transformer_tok2vec_v1_initialization(request, golden, nlp):
    """The same config and seed give the same initial model."""
    torch.manual_seed(0)
    numpy.random.seed(0)
    model = build("spacy-encoder.TransformerTok2Vec.v1", **TOK2VEC)
    model.initialize()
    check(request, golden, "TransformerTok2Vec.v1/init", summary(model.predict([nlp(t) for t in TEXTS])))


def encoder_inputs():
    rng = numpy.random.default_rng(0)
    return [rng.normal(size=(n, 16)).astype("f") for n in (40, 3, 0)]


def test_transformer_encoder_v1(request, golden):
    encoder_check(request, golden, "TransformerEncoder.v1", {})


def test_transformer_encoder_v2(request, golden):
    encoder_check(request, golden, "TransformerEncoder.v2", {"output_scale": 3.0})


def encoder_check(request, golden, name, extra):
    model = build(f"spacy-encoder.{name}", **ENCODER, **extra)
    model.initialize()
    set_weights(model)
    X = encoder_inputs()
    predicted = model.predict(X)
    torch.manual_seed(0)
    trained, backprop = model.begin_update(X)
    dX = backprop([numpy.ones_like(y) for y in trained])
    record = {**summary(list(predicted) + list(trained) + list(dX)), **layout(model)}
    check(request, golden, name, record)


def scripted(eager_name: str, scripted_name: str, eager_args, scripted_keys) -> Model:
    """A scripted model rebuilt by the `Scripted*` name from the bytes of an eager one."""
    eager = build(eager_name, **{**eager_args, "torchscript": True})
    eager.initialize()
    set_weights(eager)
    model = build(scripted_name, **{k: eager_args[k] for k in scripted_keys})
    return model.from_bytes(eager.to_bytes())


def test_scripted_tok2vec_v1(request, golden, nlp):
    keys = ["width", "attrs", "max_length", "window_stride", "mixed_precision", "grad_scaler_config"]
    model = scripted("spacy-encoder.TransformerTok2Vec.v1", "spacy-encoder.ScriptedTok2Vec.v1", TOK2VEC, keys)
    docs = [nlp(t) for t in TEXTS]
    check(request, golden, "ScriptedTok2Vec.v1", {**summary(model.predict(docs)), **layout(model)})


def test_scripted_encoder_v1(request, golden):
    keys = ["width", "max_length", "window_stride", "mixed_precision", "grad_scaler_config"]
    model = scripted("spacy-encoder.TransformerEncoder.v1", "spacy-encoder.ScriptedEncoder.v1", ENCODER, keys)
    check(request, golden, "ScriptedEncoder.v1", {**summary(model.predict(encoder_inputs())), **layout(model)})


@pytest.mark.parametrize("exclusive", [True, False])
def test_textcat_reduce_v1(request, golden, nlp, exclusive):
    tok2vec = build("spacy-encoder.TransformerTok2Vec.v1", **TOK2VEC_POSTNORM)
    model = build(
        "spacy-encoder.TextCatReduce.v1", tok2vec=tok2vec, exclusive_classes=exclusive, use_reduce_first=True,
        use_reduce_last=True, use_reduce_max=True, use_reduce_mean=True, nO=3,
    )
    docs = [nlp(t) for t in TEXTS]
    model.initialize(X=docs)
    set_weights(model)
    output = model.get_ref("output_layer")
    rng = numpy.random.default_rng(1)
    for param in ("W", "b"):
        output.set_param(param, rng.normal(size=output.get_param(param).shape).astype("f"))
    check(request, golden, f"TextCatReduce.v1/exclusive={exclusive}", {**summary([model.predict(docs)]), **layout(model)})


def vectors_nlp():
    """A blank pipeline with a few fixed static vectors (8 wide): some words of TEXTS
    have one, the others get zeros."""
    nlp = spacy.blank("en")
    rng = numpy.random.default_rng(7)
    for word in sorted({t.text for text in TEXTS for t in nlp.make_doc(text)})[::2]:
        nlp.vocab.set_vector(word, rng.normal(size=(8,)).astype("f"))
    return nlp


TOK2VEC_V2 = dict(TOK2VEC, vectors_width=8, vectors_dropout=0.2, output_scale=3.0)


@pytest.mark.parametrize("variant", ["vectors", "no_vectors"])
def test_transformer_tok2vec_v2(request, golden, variant):
    nlp = vectors_nlp() if variant == "vectors" else spacy.blank("en")
    args = TOK2VEC_V2 if variant == "vectors" else dict(TOK2VEC_V2, vectors_width=0, vectors_dropout=0.0)
    model = build("spacy-encoder.TransformerTok2Vec.v2", **args)
    docs = [nlp(t) for t in TEXTS]
    model.initialize(X=docs if variant == "vectors" else None)
    set_weights(model)
    check(request, golden, f"TransformerTok2Vec.v2/{variant}", tok2vec_record(model, docs))


def test_scripted_tok2vec_v2(request, golden):
    nlp = vectors_nlp()
    keys = ["width", "attrs", "vectors_width", "max_length", "window_stride", "mixed_precision", "grad_scaler_config"]
    model = scripted("spacy-encoder.TransformerTok2Vec.v2", "spacy-encoder.ScriptedTok2Vec.v2", TOK2VEC_V2, keys)
    docs = [nlp(t) for t in TEXTS]
    check(request, golden, "ScriptedTok2Vec.v2", {**summary(model.predict(docs)), **layout(model)})


TOK2VEC_V3 = dict(TOK2VEC_V2, mix_pieces=3, rare_word_dropout=0.5)


@pytest.mark.parametrize("variant", ["maxout_rare_words", "defaults"])
def test_transformer_tok2vec_v3(request, golden, variant):
    from spacy_encoder.rare_words import count_norms

    nlp = vectors_nlp()
    args = TOK2VEC_V3 if variant == "maxout_rare_words" else TOK2VEC_V2
    model = build("spacy-encoder.TransformerTok2Vec.v3", **args)
    docs = [nlp(t) for t in TEXTS]
    model.initialize(X=docs)
    set_weights(model)
    if variant == "maxout_rare_words":
        # "Training data": the last text twice and the first once; the rest is unknown.
        norm_ids, norm_counts = count_norms([docs[3], docs[3], docs[0]])
        model.attrs.update(norm_ids=norm_ids, norm_counts=norm_counts)
    numpy.random.seed(0)  # rare-word dropout draws from numpy's global generator
    # With its defaults, v3 must reproduce v2's own record.
    key = "TransformerTok2Vec.v3/maxout_rare_words" if variant == "maxout_rare_words" else "TransformerTok2Vec.v2/vectors"
    if variant == "defaults" and request.config.getoption("--regen-golden"):
        pytest.skip("v2's record is released: never regenerated")
    check(request, golden, key, tok2vec_record(model, docs))


def test_the_check_rejects_small_changes(request, golden):
    """The tolerances pass float rounding, not a change: a record moved by 1e-4 in one
    element, or a signed sum moved by 2e-6 of the elements' magnitude, fails."""
    import copy

    if request.config.getoption("--regen-golden"):
        pytest.skip("regenerating")
    want = golden["TransformerEncoder.v2"]
    check(request, golden, "TransformerEncoder.v2", copy.deepcopy(want))  # itself passes
    moved = copy.deepcopy(want)
    moved["outputs"][0]["head"][0] += 1e-4
    with pytest.raises(AssertionError):
        check(request, golden, "TransformerEncoder.v2", moved)
    for field in ("sum", "weighted_sum"):
        moved = copy.deepcopy(want)
        moved["outputs"][0][field] += 2e-6 * want["outputs"][0]["abs_sum"]
        with pytest.raises(AssertionError, match=field):
            check(request, golden, "TransformerEncoder.v2", moved)


TOK2VEC_V4 = dict(TOK2VEC_V3, chars=8, char_width=12, attention_scale="learned")


@pytest.mark.parametrize("variant", ["chars_learned_scale", "chars_unscaled", "defaults"])
def test_transformer_tok2vec_v4(request, golden, variant):
    from spacy_encoder.rare_words import count_norms

    nlp = vectors_nlp()
    args = {
        "chars_learned_scale": TOK2VEC_V4,
        "chars_unscaled": dict(TOK2VEC_V4, attention_scale="none", mix_pieces=1, rare_word_dropout=0.0),
        "defaults": TOK2VEC_V2,
    }[variant]
    model = build("spacy-encoder.TransformerTok2Vec.v4", **args)
    docs = [nlp(t) for t in TEXTS]
    model.initialize(X=docs)
    set_weights(model)
    if args.get("rare_word_dropout"):
        norm_ids, norm_counts = count_norms([docs[3], docs[3], docs[0]])
        model.attrs.update(norm_ids=norm_ids, norm_counts=norm_counts)
    numpy.random.seed(0)
    # With its defaults, v4 must reproduce v2's own record (as v3 does).
    key = f"TransformerTok2Vec.v4/{variant}" if variant != "defaults" else "TransformerTok2Vec.v2/vectors"
    if variant == "defaults" and request.config.getoption("--regen-golden"):
        pytest.skip("v2's record is released: never regenerated")
    check(request, golden, key, tok2vec_record(model, docs))
