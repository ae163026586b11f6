"""The Thinc glue: windows, buckets, converters, padding invariance, serialization."""
import warnings

import numpy
import pytest
import spacy
import torch
from thinc.api import Model

from spacy_encoder import buckets
from spacy_encoder.architectures import build_transformer_encoder_v1, build_transformer_tok2vec_v1
from spacy_encoder.deploy import script_encoder
from spacy_encoder.pytorch.windows import doc_windows

ENCODER_ARGS = dict(
    width=32,
    depth=2,
    n_heads=4,
    ff_width=64,
    positions="rotary",
    local_window=3,
    norm_first=True,
    dropout=0.0,
    max_length=16,
    window_stride=12,
    mixed_precision=False,
    grad_scaler_config={},
    torchscript=False,
)
TOK2VEC_ARGS = dict(
    ENCODER_ARGS,
    attrs=["NORM", "PREFIX", "SUFFIX", "SHAPE"],
    rows=[100, 50, 50, 50],
    n_hashes=2,
    embed_dropout=0.0,
)


@pytest.fixture(scope="module")
def nlp():
    return spacy.blank("en")


def make_docs(nlp, lengths):
    words = "the European Commission said on Thursday it disagreed with German advice !".split()
    return [nlp.make_doc(" ".join(words[i % len(words)] for i in range(n))) if n else nlp.make_doc("") for n in lengths]


def tok2vec(**overrides) -> Model:
    model = build_transformer_tok2vec_v1(**{**TOK2VEC_ARGS, **overrides})
    model.initialize()
    return model


@pytest.mark.parametrize("n_tokens", [1, 15, 16, 17, 40, 101])
def test_doc_windows_partition_the_doc(n_tokens):
    windows = doc_windows(n_tokens, 16, 12)
    owned = [t for _, _, s, e in windows for t in range(s, e)]
    assert owned == list(range(n_tokens))
    for start, length, own_start, own_end in windows:
        assert length <= 16 and start <= own_start < own_end <= start + length <= n_tokens


def test_plan_gathers_every_token_once_and_pads_little():
    lengths = [0, 3, 40, 7, 16, 1, 0]
    plan = buckets.plan_windows(lengths, 16, 12)
    assert sorted(plan.source[plan.gather].tolist()) == list(range(sum(lengths)))
    assert numpy.array_equal(plan.source[plan.gather], numpy.arange(sum(lengths)))
    assert plan.lengths.tolist() == sorted(plan.lengths.tolist(), reverse=True)


def test_tok2vec_padding_invariance(nlp):
    model = tok2vec()
    doc = make_docs(nlp, [6])[0]
    alone = model.predict([doc])[0]
    batched = model.predict(make_docs(nlp, [14, 3]) + [doc] + make_docs(nlp, [40]))[2]
    numpy.testing.assert_allclose(batched, alone, atol=1e-5)


@pytest.mark.parametrize("lengths", [[0], [0, 0], [0, 5, 0], [1], []])
def test_tok2vec_empty_docs(nlp, lengths):
    model = tok2vec()
    docs = make_docs(nlp, lengths)
    Y, backprop = model.begin_update(docs)
    assert [y.shape for y in Y] == [(n, 32) for n in lengths]
    assert all(numpy.isfinite(y).all() for y in Y)
    assert backprop([model.ops.alloc2f(*y.shape) for y in Y]) == []


def test_tok2vec_whitespace_only_doc(nlp):
    model = tok2vec()
    docs = [nlp("   "), nlp(" \n\t ")]
    Y = model.predict(docs)
    assert [y.shape[0] for y in Y] == [len(d) for d in docs]
    assert all(numpy.isfinite(y).all() for y in Y)


def test_tok2vec_long_doc_is_windowed_not_truncated(nlp):
    from .test_windows import real_words

    model = tok2vec()
    doc = nlp.make_doc(" ".join(real_words(100)))  # real text: windows hold different tokens
    Y = model.predict([doc])[0]
    assert Y.shape == (len(doc), 32) and numpy.isfinite(Y).all()
    # Every window's tokens equal the encoder run on that window alone.
    for start, length, own_start, own_end in doc_windows(len(doc), 16, 12):
        window = model.predict([doc[start : start + length].as_doc()])[0]
        numpy.testing.assert_allclose(Y[own_start:own_end], window[own_start - start : own_end - start], atol=1e-5)


def test_tok2vec_backprop_reaches_torch_weights(nlp):
    model = tok2vec()
    docs = make_docs(nlp, [5, 30])
    Y, backprop = model.begin_update(docs)
    backprop([model.ops.alloc2f(*y.shape) + 1.0 for y in Y])
    torch_model = model.layers[0].shims[0]._model
    grads = [p.grad for p in torch_model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert torch_model.embed.table.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("torchscript", [False, True])
def test_updates_write_weights_in_place_and_keep_no_history(nlp, torchscript):
    """Regression: thinc's shim replaced every parameter's `.data` at each update, with
    a chain of tensor -> numpy -> dlpack links back to the first step that was never
    freed (about one tensor per parameter per step); it fragmented the heap and
    `spacy train` RSS grew by gigabytes. Updates must be in place and leave no tensors
    behind."""
    import gc

    from thinc.api import Adam

    model = tok2vec(torchscript=torchscript)
    shim = model.layers[0].shims[0]
    params = dict(shim._model.named_parameters())
    pointers = {name: p.data_ptr() for name, p in params.items()}
    before = {name: p.detach().clone() for name, p in params.items()}
    optimizer = Adam(0.01)
    docs = make_docs(nlp, [5, 30, 12])

    def live_tensors() -> int:
        gc.collect()
        with warnings.catch_warnings():  # isinstance() on torch.distributed.reduce_op warns
            warnings.filterwarnings("ignore", message=".*reduce_op.*is deprecated", category=FutureWarning)
            return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))

    def step() -> None:
        Y, backprop = model.begin_update(docs)
        backprop([model.ops.alloc2f(*y.shape) + 1.0 for y in Y])
        model.finish_update(optimizer)

    for _ in range(3):
        step()
    start = live_tensors()
    for _ in range(20):
        step()
    assert live_tensors() - start < len(params)  # the old code added len(params) per step
    after = dict(shim._model.named_parameters())
    assert {name: p.data_ptr() for name, p in after.items()} == pointers
    assert not torch.equal(after["embed.table.weight"].detach(), before["embed.table.weight"])


@pytest.mark.parametrize("torchscript", [False, True])
def test_use_params_swaps_in_the_optimizers_averages(nlp, torchscript):
    """`use_averages = true`: spaCy evaluates and saves under
    `nlp.use_params(optimizer.averages)`. Thinc's torch shim never found its averages
    (keyed `(shim.id, name)`), so the torch weights were used as they were. Inside the
    block the encoder must predict with the averages, and afterwards with its own
    weights again."""
    from thinc.api import Adam

    model = tok2vec(torchscript=torchscript)
    shim = model.layers[0].shims[0]
    optimizer = Adam(0.01, use_averages=True)
    docs = make_docs(nlp, [5, 30, 12])
    for _ in range(5):
        Y, backprop = model.begin_update(docs)
        backprop([model.ops.alloc2f(*y.shape) + 1.0 for y in Y])
        model.finish_update(optimizer)
    params = dict(shim._model.named_parameters())
    assert {(shim.id, name) for name in params} <= set(optimizer.averages)
    weights = {name: p.detach().clone() for name, p in params.items()}
    own = model.predict(docs)

    # The averages predicted by hand: a copy of the module with the averages loaded.
    reference = tok2vec(torchscript=torchscript)
    reference.layers[0].shims[0]._model.load_state_dict(
        {name: torch.from_numpy(numpy.asarray(optimizer.averages[(shim.id, name)])) for name in params}
        | {n: b for n, b in shim._model.state_dict().items() if n not in params}
    )
    expected = reference.predict(docs)

    with model.use_params(optimizer.averages):
        averaged = model.predict(docs)
    for y, e, o in zip(averaged, expected, own):
        numpy.testing.assert_allclose(y, e, rtol=1e-5, atol=1e-6)
        assert not numpy.allclose(y, o)
    for name, p in shim._model.named_parameters():
        assert torch.equal(p.detach(), weights[name]), name
    for y, o in zip(model.predict(docs), own):
        numpy.testing.assert_array_equal(y, o)

    # The weights come back when the block raises, and other shims' keys are ignored.
    with pytest.raises(RuntimeError):
        with model.use_params(optimizer.averages):
            raise RuntimeError
    with model.use_params({(shim.id + 1, name): v for (_, name), v in optimizer.averages.items()}):
        pass
    for name, p in shim._model.named_parameters():
        assert torch.equal(p.detach(), weights[name]), name


def test_encoder_input_gradient_matches_torch_autograd():
    """With overlapping windows a token's gradient is summed over its windows."""
    model = build_transformer_encoder_v1(**ENCODER_ARGS)
    model.initialize()
    X = [numpy.random.uniform(-1, 1, (n, 32)).astype("f") for n in (30, 4)]
    Y, backprop = model.begin_update(X)
    dY = [numpy.random.uniform(-1, 1, y.shape).astype("f") for y in Y]
    dX = backprop(dY)
    # Reference: the same windows by hand in torch.
    torch_model = model.layers[0].shims[0]._model
    Xt = torch.tensor(X[0], requires_grad=True)
    out = torch.zeros(30, 32)
    for start, length, own_start, own_end in doc_windows(30, 16, 12):
        y = torch_model(Xt[start : start + length].unsqueeze(0), torch.tensor([length]))[0]
        out = out.index_add(0, torch.arange(own_start, own_end), y[own_start - start : own_end - start])
    numpy.testing.assert_allclose(Y[0], out.detach().numpy(), atol=1e-5)
    (out * torch.tensor(dY[0])).sum().backward()
    numpy.testing.assert_allclose(dX[0], Xt.grad.numpy(), atol=1e-5)
    assert dX[1].shape == (4, 32)


def test_tok2vec_bytes_roundtrip_gives_equal_predictions(nlp):
    model = tok2vec()
    docs = make_docs(nlp, [7, 20])
    expected = model.predict(docs)
    fresh = tok2vec()  # different random init
    assert not numpy.allclose(fresh.predict(docs)[0], expected[0])
    fresh.from_bytes(model.to_bytes())
    for a, b in zip(fresh.predict(docs), expected):
        numpy.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("positions", ["rotary", "sinusoidal", "learned"])
def test_tok2vec_torchscript_equals_eager(nlp, positions):
    eager = tok2vec(positions=positions)
    docs = make_docs(nlp, [3, 25, 0, 9])
    expected = eager.predict(docs)
    scripted = script_encoder(eager.copy())
    scripted_module = scripted.layers[0].shims[0]._model
    assert isinstance(scripted_module, torch.jit.ScriptModule)
    for a, b in zip(scripted.predict(docs), expected):
        numpy.testing.assert_allclose(a, b, atol=1e-4)
    # Scripted modules train too, with the eager module's gradients.
    rng = numpy.random.default_rng(0)
    dY = [rng.normal(size=y.shape).astype("f") for y in expected]
    grads = {}
    for name, model in (("eager", eager), ("scripted", scripted)):
        module = model.layers[0].shims[0]._model
        module.zero_grad()
        Y, backprop = model.begin_update(docs)
        backprop([model.ops.asarray2f(d) for d in dY])
        grads[name] = {n: p.grad.clone() for n, p in module.named_parameters()}
    assert grads["scripted"].keys() == grads["eager"].keys()
    for n, g in grads["eager"].items():
        assert g.abs().sum() > 0, n
        torch.testing.assert_close(grads["scripted"][n], g, atol=1e-5, rtol=1e-4)


def test_tok2vec_torchscript_bytes_roundtrip(nlp):
    model = tok2vec(torchscript=True)
    assert isinstance(model.layers[0].shims[0]._model, torch.jit.ScriptModule)
    docs = make_docs(nlp, [7, 20])
    expected = model.predict(docs)
    fresh = tok2vec(torchscript=True).from_bytes(model.to_bytes())
    for a, b in zip(fresh.predict(docs), expected):
        numpy.testing.assert_allclose(a, b, atol=1e-6)


def test_mixed_precision_on_cpu_is_turned_off_with_a_warning(nlp, caplog):
    with caplog.at_level("WARNING", logger="spacy_encoder"):
        model = tok2vec(mixed_precision=True, grad_scaler_config={"init_scale": 1024.0})
    assert "mixed_precision" in caplog.text
    Y, backprop = model.begin_update(make_docs(nlp, [4]))
    backprop([model.ops.alloc2f(*y.shape) + 1.0 for y in Y])
