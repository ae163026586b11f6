"""FastDropout: the same Bernoulli mask as nn.Dropout, from cheaper random numbers."""
import pytest
import torch
from torch import nn

from spacy_encoder.shims import quiet_jit
from spacy_encoder.pytorch import EmbedConfig, EncoderConfig, FastDropout, Tok2VecEncoder, use_fast_dropout


def _both(p: float):
    eager = FastDropout(p).train()
    with quiet_jit():
        scripted = torch.jit.script(FastDropout(p)).train()
    return [("eager", eager), ("scripted", scripted)]


@pytest.mark.parametrize("p", [0.1, 0.3])
def test_keeps_one_minus_p_and_scales_the_kept(p):
    torch.manual_seed(0)
    x = torch.randn(8, 100, 257)  # numel not a multiple of 4: the last draw is cut
    for name, module in _both(p):
        y = module(x)
        kept = y != 0
        assert abs(kept.float().mean().item() - (1 - p)) < 0.003, name
        assert torch.allclose(y[kept], x[kept] / (1 - p)), name


def test_every_int16_lane_is_uniform():
    """The eager path cuts each int64 draw into four lanes. random_() without a range
    leaves the top bit 0, which would keep every element of one lane in four."""
    torch.manual_seed(0)
    y = FastDropout(0.5).train()(torch.ones(4 * 50_000))
    per_lane = (y != 0).float().view(-1, 4).mean(0)
    assert torch.all((per_lane - 0.5).abs() < 0.01), per_lane


def test_eval_and_zero_rate_are_the_identity():
    x = torch.randn(3, 5, 7)
    for _, module in _both(0.2):
        assert torch.equal(module.eval()(x), x)
    assert torch.equal(FastDropout(0.0).train()(x), x)
    with pytest.raises(ValueError, match="p must be"):
        FastDropout(1.0)


def test_gradient_is_the_mask_times_the_scale():
    torch.manual_seed(0)
    x = torch.randn(4, 64, 32, requires_grad=True)
    y = FastDropout(0.25).train()(x)
    y.sum().backward()
    expected = (y.detach() != 0).float() / 0.75
    assert torch.allclose(x.grad, expected)


def test_same_seed_same_mask():
    x = torch.ones(2, 50, 64)
    module = FastDropout(0.1).train()
    torch.manual_seed(3)
    a = module(x)
    torch.manual_seed(3)
    b = module(x)
    torch.manual_seed(4)
    c = module(x)
    assert torch.equal(a, b) and not torch.equal(a, c)


def _tok2vec(dropout: float = 0.1) -> Tok2VecEncoder:
    encoder = EncoderConfig(width=32, depth=2, n_heads=4, ff_width=64, max_length=16, window_stride=12, dropout=dropout)
    return Tok2VecEncoder(EmbedConfig(rows=[50, 20, 30, 40], width=32, dropout=dropout), encoder)


def test_swap_replaces_every_dropout_and_keeps_weights_and_predictions():
    torch.manual_seed(0)
    reference = _tok2vec()
    swapped = _tok2vec()
    swapped.load_state_dict(reference.state_dict())
    n_dropouts = sum(isinstance(m, nn.Dropout) for m in reference.modules())
    assert use_fast_dropout(swapped) is swapped
    assert n_dropouts > 0
    assert not any(isinstance(m, nn.Dropout) for m in swapped.modules())
    assert sum(isinstance(m, FastDropout) for m in swapped.modules()) == n_dropouts
    assert swapped.state_dict().keys() == reference.state_dict().keys()
    ids = torch.randint(-(2**62), 2**62, (3, 9, 4))
    lengths = torch.tensor([9, 4, 0])
    assert torch.equal(swapped.eval()(ids, lengths), reference.eval()(ids, lengths))
    with quiet_jit():
        scripted = torch.jit.script(swapped)
    assert torch.allclose(scripted.eval()(ids, lengths), reference(ids, lengths), atol=1e-6)
    # Training mode, scripted: the masks draw (two passes differ), padding stays zero,
    # and every weight gets a finite gradient.
    scripted.train()
    out = scripted(ids, lengths)
    assert not torch.equal(out, scripted(ids, lengths))
    assert torch.equal(out[1, 4:], torch.zeros_like(out[1, 4:])) and torch.equal(out[2], torch.zeros_like(out[2]))
    out.pow(2).sum().backward()
    grads = [p.grad for p in scripted.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
