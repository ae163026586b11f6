"""On a CUDA device: training, mixed precision, TorchScript, and a pipeline saved on the
GPU loaded on the CPU.

Marked `gpu`, which the default run leaves out (`pytest -m gpu tests/test_gpu.py` runs
them), and skipped, with the reason, where torch sees no CUDA device. `bash .ci/gpu-check
device` runs them on a lent GPU machine (docs/development.md, GPU tests). spaCy on a GPU
needs CuPy as well as a CUDA torch (docs/gpu.md): without it these tests fail at `require_gpu`, as
`spacy train --gpu-id 0` would.
"""
from typing import Any, Dict, List, Tuple

import numpy
import pytest
import spacy
import torch
from spacy.training import Example
from thinc.api import CupyOps, get_current_ops, require_cpu, require_gpu, set_gpu_allocator

from spacy_encoder.deploy import script_encoder

from .test_training import NER_DATA, TEXTCAT_DATA, examples, nlp_from_config

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False)"),
]

# Several windows of the config's 256 tokens, an empty text and whitespace only.
TEXTS = [t for t, _ in NER_DATA] + ["", "   ", "A longer text about Berlin and Paris . " * 60]


@pytest.fixture
def gpu():
    """spaCy on GPU 0 for one test, as `spacy train --gpu-id 0 --system.gpu_allocator
    pytorch` sets it up; the CPU again afterwards, for the tests that follow."""
    require_gpu(0)
    set_gpu_allocator("pytorch")
    assert isinstance(get_current_ops(), CupyOps)
    yield
    require_cpu()


def host(array: Any) -> numpy.ndarray:
    """A doc.tensor (CuPy on the GPU) as a numpy array."""
    return array.get() if hasattr(array, "get") else numpy.asarray(array)


def train_steps(nlp: spacy.Language, exs: List[Example], n_steps: int) -> List[Dict[str, float]]:
    """`n_steps` updates on the same examples; the losses of each step."""
    optimizer = nlp.initialize(lambda: exs)
    history = []
    for _ in range(n_steps):
        losses: Dict[str, float] = {}
        nlp.update(exs, sgd=optimizer, losses=losses)
        history.append({name: float(value) for name, value in losses.items()})
    return history


def predictions(nlp: spacy.Language, texts: List[str]) -> Tuple[list, list, List[numpy.ndarray]]:
    docs = list(nlp.pipe(texts))
    ents = [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in docs]
    cats = [dict(doc.cats) for doc in docs]
    return ents, cats, [host(doc.tensor) for doc in docs]


def assert_same(a: tuple, b: tuple, atol: float) -> None:
    assert a[0] == b[0]
    for x, y in zip(a[1], b[1]):
        assert x.keys() == y.keys()
        numpy.testing.assert_allclose(list(x.values()), list(y.values()), atol=atol)
    for x, y in zip(a[2], b[2]):
        assert x.shape == y.shape
        numpy.testing.assert_allclose(x, y, atol=atol, rtol=atol)


@pytest.fixture
def trained_ner(gpu):
    nlp = nlp_from_config("ner")
    train_steps(nlp, examples(nlp, "ner"), 40)
    return nlp


@pytest.mark.parametrize("name", ["ner", "textcat"])
def test_gpu_training_steps_lower_a_finite_loss(gpu, name):
    nlp = nlp_from_config(name)
    history = train_steps(nlp, examples(nlp, name), 50)
    values = [h[name] for h in history]
    assert all(numpy.isfinite(v) for h in history for v in h.values()), history
    # The config's feature dropout makes single steps noisy: compare the ends' means.
    assert numpy.mean(values[-5:]) < 0.5 * numpy.mean(values[:5]), values
    doc = nlp(TEXTS[0])
    assert hasattr(doc.tensor, "get"), "doc.tensor is not a CuPy array: the encoder did not run on the GPU"
    assert doc.tensor.shape == (len(doc), 128)
    assert torch.cuda.memory_allocated() > 0


@pytest.mark.parametrize("name", ["ner", "textcat"])
def test_gpu_mixed_precision_stays_finite_with_an_empty_doc(gpu, name):
    nlp = nlp_from_config(name, mixed_precision=True, grad_scaler_config={"init_scale": 1024.0})
    exs = examples(nlp, name)
    empty = {"entities": []} if name == "ner" else {"cats": dict(TEXTCAT_DATA[0][1])}
    exs.append(Example.from_dict(nlp.make_doc(""), empty))
    history = train_steps(nlp, exs, 10)
    assert all(numpy.isfinite(v) for h in history for v in h.values()), history
    for doc in nlp.pipe(["", "Berlin", "   ", TEXTS[-1]]):
        tensor = host(doc.tensor)
        assert tensor.dtype == numpy.float32
        assert tensor.shape == (len(doc), 128)
        assert numpy.isfinite(tensor).all()
        assert all(numpy.isfinite(v) for v in doc.cats.values())


def test_gpu_scripted_encoder_equals_eager(trained_ner):
    nlp = trained_ner
    eager = predictions(nlp, TEXTS)
    script_encoder(nlp.get_pipe("tok2vec").model)
    scripted = predictions(nlp, TEXTS)
    assert_same(scripted, eager, atol=1e-4)
    assert any(eager[0]), "the trained pipeline finds no entity: the comparison would be weak"


def test_gpu_saved_pipeline_loads_on_cpu_with_equal_predictions(trained_ner, tmp_path):
    on_gpu = predictions(trained_ner, TEXTS)
    trained_ner.to_disk(tmp_path / "model")
    require_cpu()
    loaded = spacy.load(tmp_path / "model")
    on_cpu = predictions(loaded, TEXTS)
    assert not hasattr(loaded(TEXTS[0]).tensor, "get"), "the loaded pipeline did not run on the CPU"
    assert_same(on_cpu, on_gpu, atol=1e-4)
