"""Small inputs on one intra-op thread (`spacy_encoder.threads`, used by the shims'
`predict`): the calling thread's setting comes back, also after an error; large inputs
and training keep their threads; outputs do not depend on the thread count."""
import logging

import numpy
import pytest
import torch

from spacy_encoder import bench, threads
from spacy_encoder.nodes import encoder_nodes, torch_module

# The thread count changes the order in which MKL's GEMM sums: outputs of order 1-4
# differed by up to 1.2e-6 between one and two threads (eager and TorchScript; int8 not
# at all), a few float32 ulps. A policy that changed what is computed (dropout on, a
# wrong mode) moves them by far more.
ATOL = 1e-5
WORDS = "The European Commission said on Thursday it disagreed with German advice .".split()


def text_of(n_tokens: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(n_tokens))


@pytest.fixture(autouse=True)
def two_threads(monkeypatch):
    """Every test starts from two intra-op threads (the policy does nothing at one) with
    the policy at its default, and leaves the process's own setting as it was."""
    own = torch.get_num_threads()
    monkeypatch.delenv(threads.ENV_VAR, raising=False)
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(own)


@pytest.fixture
def set_calls(monkeypatch):
    """Every value given to torch.set_num_threads during the test."""
    calls = []
    real = torch.set_num_threads

    def spy(n):
        calls.append(n)
        real(n)

    monkeypatch.setattr(torch, "set_num_threads", spy)
    return calls


@pytest.fixture(scope="module")
def eager_nlp():
    return bench.build_pipeline("ner-ours")


@pytest.fixture(scope="module")
def scripted_nlp():
    return bench.build_pipeline("ner-ours-torchscript")


def seen_threads(nlp):
    """A forward pre-hook on the eager module that records torch's thread count inside
    the forward; returns (the list it fills, the hook handle)."""
    seen = []
    module = torch_module(next(encoder_nodes(nlp.get_pipe("tok2vec").model)))
    handle = module.register_forward_pre_hook(lambda mod, args: seen.append(torch.get_num_threads()))
    return seen, handle


def test_one_intra_op_thread_restores_the_callers_own_setting():
    torch.set_num_threads(3)  # not the default: restoring a constant would fail
    with threads.one_intra_op_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 3
    with pytest.raises(ValueError, match="inside"):
        with threads.one_intra_op_thread():
            assert torch.get_num_threads() == 1
            raise ValueError("inside")
    assert torch.get_num_threads() == 3
    with threads.one_intra_op_thread(enabled=False):
        assert torch.get_num_threads() == 3


def test_at_one_thread_nothing_is_switched(set_calls):
    torch.set_num_threads(1)
    set_calls.clear()
    with threads.one_intra_op_thread():
        assert torch.get_num_threads() == 1
    assert set_calls == []


@pytest.mark.parametrize(
    "value, expected", [(None, threads.SMALL_INPUT_TOKENS), ("64", 64), ("0", 0), (" ", threads.SMALL_INPUT_TOKENS)]
)
def test_the_threshold_comes_from_the_environment(monkeypatch, value, expected):
    if value is not None:
        monkeypatch.setenv(threads.ENV_VAR, value)
    assert threads.small_input_tokens() == expected
    assert threads.is_small(1) == (expected > 0)
    assert not threads.is_small(0)
    assert threads.is_small(threads.SMALL_INPUT_TOKENS + 1) == (expected > threads.SMALL_INPUT_TOKENS)


def test_a_bad_threshold_warns_and_keeps_the_default(monkeypatch, caplog):
    monkeypatch.setenv(threads.ENV_VAR, "many")
    threads._parse.cache_clear()
    with caplog.at_level(logging.WARNING, logger="spacy_encoder"):
        assert threads.small_input_tokens() == threads.SMALL_INPUT_TOKENS
    assert threads.ENV_VAR in caplog.text


def test_a_small_request_runs_on_one_thread_and_restores_the_setting(eager_nlp):
    seen, handle = seen_threads(eager_nlp)
    try:
        eager_nlp(text_of(14))
    finally:
        handle.remove()
    assert seen == [1]
    assert torch.get_num_threads() == 2


def test_the_setting_comes_back_after_an_error_in_the_forward(eager_nlp):
    module = torch_module(next(encoder_nodes(eager_nlp.get_pipe("tok2vec").model)))

    def fail(mod, args):
        assert torch.get_num_threads() == 1
        raise RuntimeError("forward failed")

    handle = module.register_forward_pre_hook(fail)
    try:
        with pytest.raises(RuntimeError, match="forward failed"):
            eager_nlp(text_of(14))
    finally:
        handle.remove()
    assert torch.get_num_threads() == 2


def test_a_large_input_keeps_its_threads(eager_nlp, set_calls):
    seen, handle = seen_threads(eager_nlp)
    try:
        eager_nlp(text_of(threads.SMALL_INPUT_TOKENS + 40))
    finally:
        handle.remove()
    assert seen == [2]
    assert set_calls == []


def test_training_keeps_its_threads(eager_nlp, set_calls):
    seen, handle = seen_threads(eager_nlp)
    tok2vec = eager_nlp.get_pipe("tok2vec").model
    try:
        tok2vec.begin_update([eager_nlp.make_doc(text_of(14))])
    finally:
        handle.remove()
        module = torch_module(next(encoder_nodes(tok2vec)))
        module.eval()
    assert seen == [2]
    assert set_calls == []


def test_the_policy_turns_off(eager_nlp, monkeypatch, set_calls):
    monkeypatch.setenv(threads.ENV_VAR, "0")
    seen, handle = seen_threads(eager_nlp)
    try:
        eager_nlp(text_of(14))
    finally:
        handle.remove()
    assert seen == [2]
    assert set_calls == []


@pytest.mark.parametrize("name", ["eager", "scripted"])
def test_outputs_are_equal_with_the_policy_on_and_off(name, eager_nlp, scripted_nlp, monkeypatch, set_calls):
    nlp = eager_nlp if name == "eager" else scripted_nlp
    texts = [text_of(n) for n in (1, 5, 14, 60)]
    on = [nlp(t).tensor.copy() for t in texts]
    assert set_calls == [1, 2] * len(texts)  # one thread for each request, then back
    monkeypatch.setenv(threads.ENV_VAR, "0")
    off = [nlp(t).tensor.copy() for t in texts]
    assert set_calls == [1, 2] * len(texts)
    for a, b in zip(on, off):
        numpy.testing.assert_allclose(a, b, rtol=0, atol=ATOL)


def test_outputs_are_equal_with_one_and_two_threads(eager_nlp, monkeypatch):
    """Large inputs (buckets above the threshold) too: the thread count never changes
    the result beyond float rounding."""
    monkeypatch.setenv(threads.ENV_VAR, "0")
    texts = [text_of(n) for n in (3, 14, 40, 300)] * 4
    two = [doc.tensor.copy() for doc in eager_nlp.pipe(texts, batch_size=16)]
    torch.set_num_threads(1)
    one = [doc.tensor.copy() for doc in eager_nlp.pipe(texts, batch_size=16)]
    for a, b in zip(one, two):
        numpy.testing.assert_allclose(a, b, rtol=0, atol=ATOL)
