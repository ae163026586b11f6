"""`spacy-encoder.TransformerEncoder.v1` in the `encode` slot of `spacy.Tok2Vec.v2`,
built from a config: it trains, predicts entities, saves, reloads, and scripts to
`spacy-encoder.ScriptedEncoder.v1` with the same predictions."""
import numpy
import pytest
import spacy
import torch
from spacy.training import Example
from spacy.util import load_config

from spacy_encoder.deploy import script_pipeline

from .conftest import REPO, run_without_torch
from .test_training import NER_DATA, train
from .test_windows import real_words

WIDTH = 32
TOK2VEC = {
    "@architectures": "spacy.Tok2Vec.v2",
    "embed": {
        "@architectures": "spacy.MultiHashEmbed.v2",
        "width": WIDTH,
        "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
        "rows": [500, 100, 100, 100],
        "include_static_vectors": False,
    },
    "encode": {
        "@architectures": "spacy-encoder.TransformerEncoder.v1",
        "width": WIDTH,
        "depth": 2,
        "n_heads": 4,
        "ff_width": 64,
        "positions": "rotary",
        "local_window": 3,
        "norm_first": True,
        "dropout": 0.0,
        "max_length": 16,
        "window_stride": 12,
        "mixed_precision": False,
        "grad_scaler_config": {},
        "torchscript": False,
    },
}


def outputs(nlp, texts):
    docs = list(nlp.pipe(texts))
    return [d.tensor for d in docs], [[(e.start, e.end, e.label_) for e in d.ents] for d in docs]


def assert_same(a, b):
    for x, y in zip(a[0], b[0]):
        numpy.testing.assert_allclose(x, y, atol=1e-5)
    assert a[1] == b[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    config = load_config(REPO / "configs" / "ner.cfg")
    config["training"]["optimizer"]["learn_rate"] = 0.001
    config["components"]["tok2vec"]["model"] = TOK2VEC
    config["components"]["ner"]["model"]["tok2vec"]["width"] = WIDTH
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    exs = [Example.from_dict(nlp.make_doc(t), {"entities": e}) for t, e in NER_DATA]
    train(nlp, exs, 40)
    path = tmp_path_factory.mktemp("encoder_slot") / "eager"
    nlp.to_disk(path)
    return nlp, path


def test_encoder_slot_saves_reloads_and_scripts(trained, tmp_path):
    nlp, path = trained
    texts = [t for t, _ in NER_DATA] + [" ".join(real_words(50)), ""]
    expected = outputs(nlp, texts)
    assert sum(map(len, expected[1])) > 0, "the pipeline must predict entities"
    assert expected[0][-2].shape[0] > TOK2VEC["encode"]["max_length"] * 2  # several windows
    reloaded = spacy.load(path)
    assert_same(outputs(reloaded, texts), expected)

    assert script_pipeline(path, tmp_path / "scripted") == ["tok2vec"]
    config = load_config(tmp_path / "scripted" / "config.cfg")
    encode = config["components"]["tok2vec"]["model"]["encode"]
    assert encode["@architectures"] == "spacy-encoder.ScriptedEncoder.v1"
    scripted = spacy.load(tmp_path / "scripted")
    modules = [n.shims[0]._model for n in scripted.get_pipe("tok2vec").model.walk() if n.name == "pytorch_script"]
    assert len(modules) == 1 and isinstance(modules[0], torch.jit.ScriptModule)
    assert_same(outputs(scripted, texts), expected)


def test_encoder_slot_converts_to_onnx_and_runs_without_torch(trained, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime is the `onnx` extra")
    pytest.importorskip("onnxscript", reason="onnxscript (the `onnx` extra) is needed by torch.onnx.export")
    from spacy_encoder.onnx_export import onnx_pipeline

    nlp, path = trained
    texts = [t for t, _ in NER_DATA] + [" ".join(real_words(50)), ""]
    expected = outputs(nlp, texts)
    for optimize in ("none", "int8"):
        assert onnx_pipeline(path, tmp_path / optimize, optimize=optimize) == ["tok2vec"]
    encode = load_config(tmp_path / "none" / "config.cfg")["components"]["tok2vec"]["model"]["encode"]
    assert encode == {"@architectures": "spacy-encoder.OnnxEncoder.v1", "width": WIDTH, "max_length": 16, "window_stride": 12}
    tensors, ents = outputs(spacy.load(tmp_path / "none"), texts)
    for text, x, y in zip(texts, tensors, expected[0]):
        numpy.testing.assert_allclose(x, y, atol=1e-4, err_msg=text[:40])
    assert ents == expected[1]
    int8 = spacy.load(tmp_path / "int8")
    for x, y in zip(outputs(int8, texts)[0], expected[0]):
        if len(y):
            cosine = (x * y).sum(1) / (numpy.linalg.norm(x, axis=1) * numpy.linalg.norm(y, axis=1))
            assert cosine.min() > 0.98
    exs = [Example.from_dict(int8.make_doc(t), {"entities": e}) for t, e in NER_DATA]
    with pytest.raises(ValueError, match="OnnxEncoder.v1: inference only"):
        int8.update(exs, sgd=int8.resume_training())
    numpy.save(tmp_path / "expected.npy", expected[0][0])
    code = (
        "import sys, numpy, spacy\n"
        f"doc = spacy.load({str(tmp_path / 'none')!r})({texts[0]!r})\n"
        f"numpy.testing.assert_allclose(doc.tensor, numpy.load({str(tmp_path / 'expected.npy')!r}), atol=1e-4)\n"
        "print('predicted without torch')\n"
    )
    # `import torch` raises in that process: loading or predicting through torch fails it.
    assert run_without_torch(code, tmp_path).strip().splitlines()[-1] == "predicted without torch"
