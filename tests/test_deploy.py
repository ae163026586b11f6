"""Deployment: scripted pipelines, standalone exports, multi-process inference, safe loading.

Parity is checked on real text: WikiGold (shipped in corpus/) always, CoNLL-03 where
../shared/corpora has it. The encoder's window is shrunk to 32 tokens so that real
documents are longer than it and the window stitching is exercised.
"""
import io
import json
import subprocess
import sys

import numpy
import pytest
import spacy
import srsly
import torch
from spacy.training import Example

from spacy_encoder.bench import column_texts
from spacy_encoder.deploy import description_path, export_encoder, script_pipeline
from spacy_encoder.nodes import torch_module
from spacy_encoder.pytorch import Tok2VecEncoder

from .conftest import REPO, shared_corpus
from .test_training import NER_DATA, nlp_from_config, train

SMALL = dict(width=64, depth=2, n_heads=4, ff_width=128, max_length=32, window_stride=24)


def real_texts(source: str):
    if source == "wikigold":
        path = REPO / "corpus" / "wikigold" / "wikigold.conll.txt"
    else:
        path = shared_corpus("conll2003", "test.txt")
    # 10 sentences per text, so some texts are longer than the 32-token window.
    return column_texts(path, 10, limit=4)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    nlp = nlp_from_config("ner", **SMALL)
    exs = [Example.from_dict(nlp.make_doc(t), {"entities": e}) for t, e in NER_DATA]
    train(nlp, exs, 40)  # enough to predict entities (at 15 steps it predicted none)
    path = tmp_path_factory.mktemp("deploy") / "eager"
    nlp.to_disk(path)
    return path


def outputs(nlp, texts):
    docs = list(nlp.pipe(texts))
    return [d.tensor for d in docs], [[(e.start, e.end, e.label_) for e in d.ents] for d in docs]


@pytest.mark.parametrize("source", ["wikigold", "conll2003"])
def test_script_pipeline_equals_eager(trained, tmp_path, source, monkeypatch):
    texts = real_texts(source)
    assert max(len(t.split()) for t in texts) > SMALL["max_length"]
    eager_tensors, eager_ents = outputs(spacy.load(trained), texts)
    assert sum(map(len, eager_ents)) > 0, "the fixture must predict entities for the comparison to mean something"
    assert script_pipeline(trained, tmp_path / "scripted") == ["tok2vec"]
    config = spacy.util.load_config(tmp_path / "scripted" / "config.cfg")
    assert config["components"]["tok2vec"]["model"]["@architectures"] == "spacy-encoder.ScriptedTok2Vec.v1"

    def no_python_module(*args, **kwargs):
        raise AssertionError("loading a scripted pipeline must not build the torch module in Python")

    monkeypatch.setattr(Tok2VecEncoder, "__init__", no_python_module)
    scripted = spacy.load(tmp_path / "scripted")
    assert isinstance(torch_module(scripted.get_pipe("tok2vec").model), torch.jit.ScriptModule)
    tensors, ents = outputs(scripted, texts)
    for a, b in zip(tensors, eager_tensors):
        numpy.testing.assert_allclose(a, b, atol=1e-4)
    assert ents == eager_ents


def test_scripted_pipeline_trains_further(trained, tmp_path):
    script_pipeline(trained, tmp_path / "scripted")
    nlp = spacy.load(tmp_path / "scripted")
    text = NER_DATA[0][0]
    before = nlp(text).tensor.copy()
    optimizer = nlp.resume_training()
    exs = [Example.from_dict(nlp.make_doc(t), {"entities": e}) for t, e in NER_DATA]
    for _ in range(3):
        nlp.update(exs, sgd=optimizer)
    after = nlp(text).tensor
    assert not numpy.allclose(before, after)
    nlp.to_disk(tmp_path / "further")
    numpy.testing.assert_allclose(spacy.load(tmp_path / "further")(text).tensor, after, atol=1e-5)


STANDALONE = r'''
import json, sys
import numpy, torch
from spacy.lang.en import English
model_path, description_path, texts_path, out_path = sys.argv[1:]
info = json.load(open(description_path))
# English(), not spacy.blank("en"): blank() fills a config, and looking up its logger
# loads every `spacy_loggers` entry point, spacy-encoder's ThroughputLogger included.
nlp = English()
texts = json.load(open(texts_path))
if info["format"] == "torchscript":
    encoder = torch.jit.load(model_path)
else:
    encoder = torch.export.load(model_path).module()

def windows(n, max_length, stride):
    if n <= max_length:
        return [(0, n, 0, n)] if n else []
    starts = list(range(0, n - max_length, stride)) + [n - max_length]
    out, own_start = [], 0
    for i, s in enumerate(starts):
        own_end = n if i == len(starts) - 1 else (starts[i + 1] + s + max_length) // 2
        out.append((s, max_length, own_start, own_end))
        own_start = own_end
    return out

results = {}
with torch.no_grad():
    for i, text in enumerate(texts):
        doc = nlp.make_doc(text)
        ids = torch.from_numpy(doc.to_array(info["attrs"]).astype("uint64").view("int64").reshape(len(doc), len(info["attrs"])))
        if info["format"] == "torchscript":
            vectors = encoder(ids)
        else:
            parts = []
            for start, length, own_start, own_end in windows(len(doc), info["max_length"], info["window_stride"]):
                hidden = encoder(ids[start:start + length].unsqueeze(0), torch.tensor([length]))[0]
                parts.append(hidden[own_start - start:own_end - start])
            vectors = torch.cat(parts) if parts else torch.zeros((0, info["width"]))
        results[str(i)] = vectors.numpy()
numpy.savez(out_path, **results)
assert "spacy_encoder" not in sys.modules, "the standalone path imported spacy_encoder"
'''


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fmt", ["torchscript", "export"])
@pytest.mark.parametrize("source", ["wikigold", "conll2003"])
def test_export_reproduces_doc_tensor_without_spacy_encoder(trained, tmp_path, fmt, source):
    texts = real_texts(source) + ["", "word"]
    expected, _ = outputs(spacy.load(trained), texts)
    model_file = tmp_path / ("encoder.pt" if fmt == "torchscript" else "encoder.pt2")
    description = export_encoder(trained, model_file, component="tok2vec", fmt=fmt)
    assert json.loads(description_path(model_file).read_text())["attrs"] == description["attrs"]
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    script = tmp_path / "standalone.py"
    script.write_text(STANDALONE)
    subprocess.run(
        [sys.executable, "-W", "ignore", str(script), str(model_file), str(description_path(model_file)),
         str(tmp_path / "texts.json"), str(tmp_path / "out.npz")],
        check=True, cwd=tmp_path,
    )
    got = numpy.load(tmp_path / "out.npz")
    for i, tensor in enumerate(expected):
        numpy.testing.assert_allclose(got[str(i)], tensor, atol=1e-4)


@pytest.mark.timeout(120)  # a fork-hang regression (spaCy#6662) fails instead of stalling CI
def test_pipe_with_two_processes_equals_one(trained):
    nlp = spacy.load(trained)
    texts = real_texts("wikigold") * 3
    one = [(d.tensor, [e.text for e in d.ents]) for d in nlp.pipe(texts, n_process=1)]
    two = [(d.tensor, [e.text for e in d.ents]) for d in nlp.pipe(texts, n_process=2, batch_size=4)]
    assert len(one) == len(two)
    assert sum(len(e) for _, e in one) > 0, "the fixture must predict entities"
    for (t1, e1), (t2, e2) in zip(one, two):
        numpy.testing.assert_allclose(t1, t2, atol=1e-5)
        assert e1 == e2


class _Payload:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_weights_fail_safely(trained, tmp_path):
    import shutil

    path = tmp_path / "evil"
    shutil.copytree(trained, path)
    marker = tmp_path / "pwned"
    model_file = path / "tok2vec" / "model"
    msg = srsly.msgpack_loads(model_file.read_bytes())
    evil = io.BytesIO()
    torch.save({"weights": _Payload(str(marker))}, evil)
    for node_shims in msg["shims"]:
        for i, shim_bytes in enumerate(node_shims):
            shim = srsly.msgpack_loads(shim_bytes)
            shim["state"] = evil.getvalue()
            node_shims[i] = srsly.msgpack_dumps(shim)
    model_file.write_bytes(srsly.msgpack_dumps(msg))
    with pytest.raises(ValueError, match="could not be loaded as a plain state_dict"):
        spacy.load(path)
    assert not marker.exists(), "the pickle payload ran"


def test_truncated_weights_fail_with_a_clear_error(trained, tmp_path):
    import shutil

    path = tmp_path / "truncated"
    shutil.copytree(trained, path)
    model_file = path / "tok2vec" / "model"
    msg = srsly.msgpack_loads(model_file.read_bytes())
    for node_shims in msg["shims"]:
        for i, shim_bytes in enumerate(node_shims):
            shim = srsly.msgpack_loads(shim_bytes)
            shim["state"] = shim["state"][: len(shim["state"]) // 2]
            node_shims[i] = srsly.msgpack_dumps(shim)
    model_file.write_bytes(srsly.msgpack_dumps(msg))
    with pytest.raises(ValueError, match="corrupted"):
        spacy.load(path)


# --- Inference-only modes: `spacy-encoder script --optimize freeze|int8` ----------------


@pytest.mark.parametrize("optimize,atol", [("freeze", 1e-5), ("int8", None)])
def test_optimized_pipeline_predicts_like_eager_and_round_trips(trained, tmp_path, optimize, atol):
    import pickle

    texts = real_texts("wikigold")
    eager_tensors, eager_ents = outputs(spacy.load(trained), texts)
    script_pipeline(trained, tmp_path / optimize, optimize=optimize)
    nlp = spacy.load(tmp_path / optimize)
    assert nlp.meta["spacy_encoder"]["inference"] == optimize
    module = torch_module(nlp.get_pipe("tok2vec").model)
    assert next(iter(module.parameters()), None) is None, "an optimized module holds no trainable weights"
    tensors, ents = outputs(nlp, texts)
    if atol is not None:  # freezing folds the weights in as constants: the same maths
        for a, b in zip(tensors, eager_tensors):
            numpy.testing.assert_allclose(a, b, atol=atol)
        assert ents == eager_ents
    else:  # int8: close to eager, and most entities the same
        err = max(float(numpy.abs(a - b).max()) for a, b in zip(tensors, eager_tensors))
        scale = max(float(numpy.abs(b).max()) for b in eager_tensors)
        assert 0.0 < err < 0.1 * scale, (err, scale)
        same = sum(len(set(a) & set(b)) for a, b in zip(ents, eager_ents))
        assert same >= 0.8 * sum(map(len, eager_ents))
    # disk and pickle round trips give the same predictions, and stable bytes
    nlp.to_disk(tmp_path / "again")
    again = spacy.load(tmp_path / "again")
    for a, b in zip(outputs(again, texts)[0], tensors):
        numpy.testing.assert_array_equal(a, b)
    for a, b in zip(outputs(pickle.loads(pickle.dumps(nlp)), texts)[0], tensors):
        numpy.testing.assert_array_equal(a, b)
    assert (tmp_path / "again" / "tok2vec" / "model").read_bytes() == (tmp_path / optimize / "tok2vec" / "model").read_bytes()


def test_optimized_pipeline_refuses_training_in_one_line(trained, tmp_path):
    script_pipeline(trained, tmp_path / "frozen", optimize="freeze")
    nlp = spacy.load(tmp_path / "frozen")
    exs = [Example.from_dict(nlp.make_doc(t), {"entities": e}) for t, e in NER_DATA]
    with pytest.raises(ValueError, match="optimized for inference.*cannot be trained"):
        nlp.update(exs, sgd=nlp.resume_training())


def test_optimize_needs_an_eager_pipeline(trained, tmp_path):
    from spacy_encoder.deploy import DeployError

    script_pipeline(trained, tmp_path / "scripted")
    with pytest.raises(DeployError, match="written by `spacy-encoder deploy script`.*pipeline it was made from"):
        script_pipeline(tmp_path / "scripted", tmp_path / "int8", optimize="int8")
    assert not (tmp_path / "int8").exists()
    with pytest.raises(DeployError, match="--optimize must be one of"):
        script_pipeline(trained, tmp_path / "x", optimize="fp4")


def test_inspecting_an_optimized_pipeline_fails_in_one_line(trained, tmp_path):
    from typer.testing import CliRunner

    from spacy_encoder.cli import app

    script_pipeline(trained, tmp_path / "frozen", optimize="freeze")
    for command in ("attention", "trace"):
        result = CliRunner().invoke(app, ["inspect", command, str(tmp_path / "frozen"), "EU rejects German call ."])
        assert result.exit_code == 1, result.output
        assert "optimized for inference" in result.output and "Traceback" not in result.output
