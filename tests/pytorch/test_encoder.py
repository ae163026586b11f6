"""The torch modules alone: masks, padding, positions, pre/post-norm, TorchScript."""
import pytest
import torch

from spacy_encoder.shims import quiet_jit
from spacy_encoder.pytorch import (
    POSITION_KINDS,
    EmbedConfig,
    EncoderConfig,
    EncoderConfigError,
    Tok2VecEncoder,
    TransformerEncoder,
    keep_mask,
)

SMALL = dict(width=32, depth=2, n_heads=4, ff_width=64, max_length=16, window_stride=12, dropout=0.0)


def small_tok2vec(**overrides) -> Tok2VecEncoder:
    encoder = EncoderConfig(**{**SMALL, **overrides})
    return Tok2VecEncoder(EmbedConfig(rows=[50, 20, 30, 40], width=encoder.width, dropout=0.0), encoder).eval()


def random_ids(batch: int, seq_len: int) -> torch.Tensor:
    return torch.randint(-(2**62), 2**62, (batch, seq_len, 4))


def test_keep_mask_marks_real_tokens_and_guards_empty_rows():
    keep = keep_mask(torch.tensor([3, 1, 0]), 4)
    assert keep.shape == (3, 1, 1, 4)
    assert keep[:, 0, 0].tolist() == [
        [True, True, True, False],
        [True, False, False, False],
        [True, False, False, False],  # empty row keeps key 0 so softmax stays finite
    ]


@pytest.mark.parametrize("positions", POSITION_KINDS)
@pytest.mark.parametrize("norm_first", [True, False])
def test_encoder_padding_invariance(positions, norm_first):
    model = small_tok2vec(positions=positions, norm_first=norm_first)
    ids = random_ids(1, 5)
    alone = model(ids, torch.tensor([5]))
    padded_ids = torch.cat([ids, random_ids(1, 4)], dim=1)  # (1, 9, 4): 4 positions of junk
    batch_ids = torch.cat([padded_ids, random_ids(1, 9)])  # a longer neighbour in the batch
    batched = model(batch_ids, torch.tensor([5, 9]))
    torch.testing.assert_close(batched[0, :5], alone[0], atol=1e-5, rtol=1e-5)
    assert torch.all(batched[0, 5:] == 0), "padding positions must be exactly zero"


@pytest.mark.parametrize("positions", POSITION_KINDS)
@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("local_window", [0, 3])
def test_encoder_eager_equals_scripted(positions, norm_first, local_window):
    model = small_tok2vec(positions=positions, norm_first=norm_first, local_window=local_window)
    with quiet_jit():
        scripted = torch.jit.script(model)
    ids, lengths = random_ids(3, 7), torch.tensor([7, 2, 0])
    torch.testing.assert_close(scripted(ids, lengths), model(ids, lengths), atol=1e-5, rtol=1e-5)


def test_empty_rows_stay_finite_with_finite_gradients():
    model = small_tok2vec().train()
    ids, lengths = random_ids(3, 6), torch.tensor([0, 6, 0])
    out = model(ids, lengths)
    assert torch.isfinite(out).all()
    (out[1].sum()).backward()
    for name, param in model.named_parameters():
        assert param.grad is None or torch.isfinite(param.grad).all(), name


def test_empty_rows_stay_finite_in_half_precision():
    encoder = TransformerEncoder(EncoderConfig(**SMALL)).eval().half()
    x = torch.randn(2, 5, 32).half() * 100
    out = encoder(x, torch.tensor([0, 5]))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("norm_first", [True, False])
def test_explicit_attention_path_equals_fast_path(norm_first):
    model = small_tok2vec(norm_first=norm_first)
    ids, lengths = random_ids(2, 6), torch.tensor([6, 3])
    states, weights = model.forward_with_weights(ids, lengths)
    torch.testing.assert_close(states[-1], model(ids, lengths), atol=1e-5, rtol=1e-5)
    assert len(states) == SMALL["depth"] + 2 and len(weights) == SMALL["depth"]
    for w in weights:
        assert w.shape == (2, 4, 6, 6)
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 6))
        assert torch.all(w[1, :, :, 3:] == 0), "padding keys must get zero weight"


def test_hashing_is_deterministic_and_in_range():
    a, b = small_tok2vec(), small_tok2vec()
    ids = random_ids(2, 9)
    assert torch.equal(a.embed.row_ids(ids), b.embed.row_ids(ids))
    rows = a.embed.row_ids(ids) - a.embed.offsets
    assert rows.min() >= 0 and torch.all(rows < a.embed.rows)


@pytest.mark.parametrize(
    "overrides,field",
    [
        (dict(width=30, n_heads=4), "n_heads"),
        (dict(depth=0), "depth"),
        (dict(positions="alibi"), "positions"),
        (dict(max_length=16, window_stride=32), "window_stride"),
        (dict(local_window=2), "local_window"),
        (dict(dropout=1.5), "dropout"),
        (dict(width="wide"), "width"),
    ],
)
def test_bad_config_names_the_field(overrides, field):
    with pytest.raises(EncoderConfigError) as err:
        EncoderConfig(**{**SMALL, **overrides})
    assert err.value.field == field
    assert f"'{field}'" in str(err.value)


def test_feature_dropout_zeroes_whole_attributes_in_training_only():
    from spacy_encoder.pytorch.embeddings import HashEmbed

    embed = HashEmbed([50, 20, 30, 40], 8, n_hashes=2, dropout=0.0, feature_dropout=0.5)
    ids = random_ids(4, 50)
    rows = embed.table(embed.row_ids(ids)).sum(dim=2)  # (B, T, F, D): what mixing sees
    captured = {}
    hook = embed.mix.register_forward_hook(lambda module, inputs, output: captured.update(x=inputs[0]))
    embed.train()
    embed(ids)
    mixed_in = captured["x"].reshape(rows.shape)
    dropped = (mixed_in == 0).all(dim=-1)  # (B, T, F): a whole attribute vector is zero
    kept = ~dropped
    assert torch.equal(mixed_in[kept], rows[kept])  # kept attributes are not rescaled
    assert 0.35 < dropped.float().mean().item() < 0.65
    embed.eval()
    first, second = embed(ids), embed(ids)
    assert torch.equal(first, second)
    assert torch.equal(captured["x"].reshape(rows.shape), rows)
    hook.remove()
    with quiet_jit():
        scripted = torch.jit.script(embed)
    assert torch.allclose(scripted(ids), first, atol=1e-6)


def test_feature_dropout_rates_per_attribute():
    from spacy_encoder.pytorch.embeddings import HashEmbed

    embed = HashEmbed([50, 20, 30, 40], 8, n_hashes=2, dropout=0.0, feature_dropout=[0.0, 0.8, 0.2, 0.0])
    embed.train()
    with quiet_jit():
        scripted = torch.jit.script(embed)
    ids = random_ids(8, 50)
    torch.manual_seed(0)
    eager = embed(ids)
    torch.manual_seed(0)
    assert torch.equal(scripted(ids), eager)  # the same draws give the same drops
    captured = {}
    hook = embed.mix.register_forward_hook(lambda module, inputs, output: captured.update(x=inputs[0]))
    embed(ids)
    hook.remove()
    dropped = (captured["x"].reshape(8, 50, 4, 8) == 0).all(dim=-1).float().mean(dim=(0, 1))  # (F,)
    assert dropped[0].item() == 0.0 and dropped[3].item() == 0.0
    assert 0.7 < dropped[1].item() < 0.9
    assert 0.1 < dropped[2].item() < 0.3
    with pytest.raises(ValueError, match="one per attribute"):
        HashEmbed([50, 20], 8, n_hashes=2, dropout=0.0, feature_dropout=[0.1, 0.1, 0.1])


# --- The int8 path's convolutions as Linear layers ---------------------------------


def _trained_like(model: torch.nn.Module) -> torch.nn.Module:
    """Non-zero biases and LayerNorm weights: a fresh init would hide a misplaced bias."""
    torch.manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("local_window", [3, 5])
def test_linear_convolutions_compute_the_convolutions(local_window):
    import copy

    from spacy_encoder.pytorch import LinearLocalConvolution, LocalConvolution, linear_convolutions

    model = _trained_like(small_tok2vec(local_window=local_window))
    swapped = linear_convolutions(copy.deepcopy(model))
    n_linear = sum(isinstance(m, LinearLocalConvolution) for m in swapped.modules())
    assert n_linear == SMALL["depth"] + 1  # one before the stack, one in every layer
    assert not any(isinstance(m, LocalConvolution) for m in swapped.modules())
    ids, lengths = random_ids(3, 9), torch.tensor([9, 4, 0])
    expected = model(ids, lengths)
    torch.testing.assert_close(swapped(ids, lengths), expected, atol=1e-5, rtol=1e-5)
    with quiet_jit():
        scripted = torch.jit.script(swapped)
    torch.testing.assert_close(scripted(ids, lengths), expected, atol=1e-5, rtol=1e-5)
    # padding invariance holds in the swapped form too: row 1 alone equals row 1 in the batch
    alone = swapped(ids[1:2, :4], lengths[1:2])
    torch.testing.assert_close(swapped(ids, lengths)[1, :4], alone[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("positions", POSITION_KINDS)
@pytest.mark.parametrize("norm_first,local_window", [(True, 3), (False, 5), (True, 0)])
def test_onnx_forms_compute_the_encoder_and_leave_it_alone(positions, norm_first, local_window):
    from spacy_encoder.pytorch import (
        AdditiveMaskAttention,
        LocalConvolution,
        SelfAttention,
        UnfoldedLocalConvolution,
        onnx_forms,
    )

    model = _trained_like(small_tok2vec(positions=positions, norm_first=norm_first, local_window=local_window))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    forms = onnx_forms(model)
    assert sum(isinstance(m, AdditiveMaskAttention) for m in forms.modules()) == SMALL["depth"]
    assert not any(type(m) is SelfAttention for m in forms.modules())
    n_convolutions = (SMALL["depth"] + 1) if local_window else 0
    assert sum(isinstance(m, UnfoldedLocalConvolution) for m in forms.modules()) == n_convolutions
    assert not any(isinstance(m, LocalConvolution) for m in forms.modules())
    assert sum(isinstance(m, LocalConvolution) for m in model.modules()) == n_convolutions
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    # empty and one-token rows, and padding: the masks' edge cases
    ids, lengths = random_ids(4, 9), torch.tensor([9, 4, 1, 0])
    expected = model(ids, lengths)
    torch.testing.assert_close(forms(ids, lengths), expected, atol=1e-5, rtol=1e-5)
    alone = forms(ids[1:2, :4], lengths[1:2])
    torch.testing.assert_close(forms(ids, lengths)[1, :4], alone[0], atol=1e-5, rtol=1e-5)
    with quiet_jit():
        scripted = torch.jit.script(forms)
    torch.testing.assert_close(scripted(ids, lengths), expected, atol=1e-5, rtol=1e-5)


def test_int8_quantizes_the_convolutions_and_leaves_the_eager_module_alone():
    from spacy_encoder.deploy import inference_module
    from spacy_encoder.pytorch import LocalConvolution

    model = _trained_like(small_tok2vec(local_window=3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    int8 = inference_module(model, "int8")
    graph = str(int8.graph) + "".join(str(m.graph) for m in int8.modules() if hasattr(m, "graph"))
    assert "conv1d" not in graph and "convolution" not in graph, "a float convolution survived int8"
    assert "quantized::linear_dynamic" in graph
    assert sum(isinstance(m, LocalConvolution) for m in model.modules()) == SMALL["depth"] + 1
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    ids, lengths = random_ids(3, 9), torch.tensor([9, 4, 0])
    with torch.no_grad():
        expected = model(ids, lengths)
        error = (int8(ids, lengths) - expected).abs().max()
    assert 0.0 < float(error) < 0.1 * float(expected.abs().max())
