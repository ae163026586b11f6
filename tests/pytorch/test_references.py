"""Independent references for the maths of the torch modules.

Each test computes the expected result another way (torch's own
`nn.TransformerEncoderLayer`, a formula written out by hand, a property every correct
implementation has) instead of comparing two paths of the same code. Widths are tiny so
that the whole file runs in seconds.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spacy_encoder.pytorch import (
    EmbedConfig,
    EncoderConfig,
    EncoderLayer,
    HashEmbed,
    SelfAttention,
    Tok2VecEncoder,
    TransformerEncoder,
    keep_mask,
)
from spacy_encoder.pytorch.positions import NoPositions, RotaryPositions

WIDTH, HEADS, FF = 16, 2, 32
HEAD_WIDTH = WIDTH // HEADS
TINY = dict(width=WIDTH, depth=2, n_heads=HEADS, ff_width=FF, max_length=12, window_stride=8, dropout=0.0)


def encoder(**overrides) -> TransformerEncoder:
    torch.manual_seed(1)
    model = TransformerEncoder(EncoderConfig(**{**TINY, **overrides})).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:  # gains and biases away from 1 and 0, so that a dropped norm shows
                param.add_(torch.randn_like(param) * 0.3)
            elif "qkv.weight" in name:  # logits of order 1, so that scale and positions show
                param.normal_(std=0.4)
    return model


def lengths_mask(lengths: torch.Tensor, seq_len: int) -> torch.Tensor:
    """(B, T) True on real tokens, written without `keep_mask`."""
    return torch.tensor([[t < int(n) for t in range(seq_len)] for n in lengths])


# --- Hand-written definitions --------------------------------------------------------


def layer_norm_ref(x, norm):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def gelu_ref(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def local_conv_ref(x, real, local):
    """x + gelu(conv(LayerNorm(x) * real)), the convolution as a sum over offsets."""
    h = layer_norm_ref(x, local.norm) * real  # (B, T, D)
    weight, bias = local.conv.weight, local.conv.bias  # (D, D, K), (D,)
    window = weight.size(-1)
    seq_len = x.size(1)
    out = bias.expand_as(h).clone()
    for j in range(window):
        offset = j - window // 2
        shifted = torch.zeros_like(h)
        for t in range(seq_len):
            if 0 <= t + offset < seq_len:
                shifted[:, t] = h[:, t + offset]
        out = out + shifted @ weight[:, :, j].T
    return x + gelu_ref(out)


def rotary_ref(x, base=10000.0):
    """Su et al. (2021): the pair (x_i, x_{i + Dh/2}) at position p is the complex number
    x_i + j x_{i+Dh/2}, multiplied by exp(j p base^(-2i/Dh))."""
    seq_len, dh = x.size(-2), x.size(-1)
    half = dh // 2
    z = torch.complex(x[..., :half].double(), x[..., half:].double())
    theta = torch.tensor([[p * base ** (-2.0 * i / dh) for i in range(half)] for p in range(seq_len)], dtype=torch.float64)
    z = z * torch.polar(torch.ones_like(theta), theta)
    return torch.cat([z.real, z.imag], dim=-1).to(x.dtype)


def sinusoidal_ref(seq_len, width):
    """Vaswani et al. (2017): PE(p, 2i) = sin(p / 10000^(2i/D)), PE(p, 2i+1) = cos(...)."""
    table = torch.zeros(seq_len, width)
    for p in range(seq_len):
        for i in range(0, width, 2):
            table[p, i] = math.sin(p / 10000 ** (i / width))
            table[p, i + 1] = math.cos(p / 10000 ** (i / width))
    return table


def attention_ref(x, attention, lengths, rotate):
    """softmax(q k^T / sqrt(Dh), padding keys excluded) v, per head, then the output layer."""
    batch, seq_len, _ = x.shape
    qkv = x @ attention.qkv.weight.T + attention.qkv.bias  # (B, T, 3D)
    q, k, v = qkv.split(WIDTH, dim=-1)

    def heads(t):
        return t.reshape(batch, seq_len, HEADS, HEAD_WIDTH).transpose(1, 2)  # (B, H, T, Dh)

    q, k, v = heads(q), heads(k), heads(v)
    if rotate:
        q, k = rotary_ref(q), rotary_ref(k)
    logits = q @ k.transpose(-1, -2) / math.sqrt(HEAD_WIDTH)  # (B, H, T, T)
    real = lengths_mask(lengths, seq_len)[:, None, None, :]
    weights = torch.exp(logits - logits.max(-1, keepdim=True).values) * real
    weights = weights / weights.sum(-1, keepdim=True)
    y = (weights @ v).transpose(1, 2).reshape(batch, seq_len, WIDTH)
    return y @ attention.output.weight.T + attention.output.bias, weights


def torch_layer_like(layer: EncoderLayer) -> nn.TransformerEncoderLayer:
    """torch's own encoder layer with our layer's weights copied in."""
    ref = nn.TransformerEncoderLayer(
        WIDTH, HEADS, FF, dropout=0.0, activation="gelu", batch_first=True, norm_first=layer.norm_first
    )
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(layer.attention.qkv.weight)
        ref.self_attn.in_proj_bias.copy_(layer.attention.qkv.bias)
        ref.self_attn.out_proj.weight.copy_(layer.attention.output.weight)
        ref.self_attn.out_proj.bias.copy_(layer.attention.output.bias)
        ref.linear1.load_state_dict(layer.feed_forward.hidden.state_dict())
        ref.linear2.load_state_dict(layer.feed_forward.output.state_dict())
        ref.norm1.load_state_dict(layer.attention_norm.state_dict())
        ref.norm2.load_state_dict(layer.ff_norm.state_dict())
    # Train mode with dropout 0 is the plain maths path (eval mode may take the fused
    # kernel, which returns nothing meaningful at padding).
    return ref.train()


def encoder_ref(model: TransformerEncoder, x, lengths, local: bool):
    """Our stack computed with torch's layers, the hand-written convolution and norm."""
    real = lengths_mask(lengths, x.size(1)).unsqueeze(-1).float()
    if local:
        x = local_conv_ref(x, real, model.local)
    for layer in model.layers:
        if local:
            x = local_conv_ref(x, real, layer.local)
        x = torch_layer_like(layer)(x, src_key_padding_mask=~lengths_mask(lengths, x.size(1)))
    if model.layers[0].norm_first:
        x = layer_norm_ref(x, model.final_norm)
    return x * real


# --- The encoder against torch's TransformerEncoderLayer ------------------------------


@pytest.mark.parametrize("norm_first", [True, False])
def test_encoder_layer_equals_torch_transformer_encoder_layer(norm_first):
    model = encoder(positions="none", local_window=0, norm_first=norm_first)
    layer = model.layers[0]
    x = torch.randn(3, 7, WIDTH)
    lengths = torch.tensor([7, 4, 1])
    real = lengths_mask(lengths, 7).unsqueeze(-1).float()
    with torch.no_grad():
        ours = layer(x, keep_mask(lengths, 7), real)
        expected = torch_layer_like(layer)(x, src_key_padding_mask=~lengths_mask(lengths, 7))
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(ours[b, :n], expected[b, :n], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("local_window", [0, 3])
def test_encoder_stack_equals_reference(norm_first, local_window):
    """The whole stack: torch's layers, the convolutions written out, the final norm
    (pre-norm only), padding rows zero."""
    model = encoder(positions="none", local_window=local_window, norm_first=norm_first)
    x = torch.randn(3, 9, WIDTH)
    lengths = torch.tensor([9, 5, 2])
    with torch.no_grad():
        ours = model(x, lengths)
        expected = encoder_ref(model, x, lengths, local=local_window > 0)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)
    states, _ = model.forward_with_weights(x, lengths)
    torch.testing.assert_close(states[-1], expected, atol=1e-5, rtol=1e-5)


def test_local_convolution_sees_neighbours_only():
    """A kernel of 3 (and no positions) over one layer: changing token 5 changes the
    input stage's output at tokens 4, 5, 6 and nowhere else."""
    model = encoder(positions="none", local_window=3, depth=1)
    x = torch.randn(1, 10, WIDTH)
    real = torch.ones(1, 10, 1)
    y = model.local(x, real)
    x2 = x.clone()
    x2[0, 5] += torch.randn(WIDTH)  # not a constant: LayerNorm would remove it
    changed = (model.local(x2, real) - y).abs().sum(-1)[0] > 1e-6
    assert changed.nonzero().flatten().tolist() == [4, 5, 6]


# --- Attention against a hand-computed softmax ----------------------------------------


@pytest.mark.parametrize("rotary", [False, True])
def test_attention_equals_hand_computed_softmax(rotary):
    torch.manual_seed(2)
    positions = RotaryPositions(HEAD_WIDTH, 12) if rotary else NoPositions()
    attention = SelfAttention(WIDTH, HEADS, positions).eval()
    x = torch.randn(3, 6, WIDTH)
    lengths = torch.tensor([6, 3, 1])
    keep = keep_mask(lengths, 6)
    with torch.no_grad():
        expected, expected_weights = attention_ref(x, attention, lengths, rotate=rotary)
        fast = attention(x, keep)
        explicit, weights = attention.forward_with_weights(x, keep)
    torch.testing.assert_close(fast, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(explicit, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights, expected_weights, atol=1e-6, rtol=1e-5)


def test_attention_ignores_padding_keys():
    """Junk at padding changes nothing at real tokens. (The empty row stays finite; on
    torch 2.13 both SDPA kernels return zeros for it anyway, and `keep_mask`'s guard,
    needed on older torch, is pinned in test_encoder.py.)"""
    torch.manual_seed(3)
    attention = SelfAttention(WIDTH, HEADS, NoPositions()).eval()
    x = torch.randn(2, 5, WIDTH)
    lengths = torch.tensor([3, 0])
    junk = x.clone()
    junk[0, 3:] = torch.randn(2, WIDTH) * 100
    with torch.no_grad():
        a = attention(x, keep_mask(lengths, 5))
        b = attention(junk, keep_mask(lengths, 5))
    torch.testing.assert_close(a[0, :3], b[0, :3])
    assert torch.isfinite(a).all()


# --- Rotary positions ----------------------------------------------------------------


def test_rotary_equals_complex_rotation():
    rotary = RotaryPositions(HEAD_WIDTH, 12)
    q, k = torch.randn(2, HEADS, 9, HEAD_WIDTH), torch.randn(2, HEADS, 9, HEAD_WIDTH)
    rq, rk = rotary.rotate(q, k)
    torch.testing.assert_close(rq, rotary_ref(q), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rk, rotary_ref(k), atol=1e-5, rtol=1e-5)


def test_rotary_is_exactly_the_rotate_half_formula():
    """The fused form (q and k stacked, a roll and a signed sine) computes
    x * cos + rotate_half(x) * sin to the bit: trained weights see the same numbers."""
    rotary = RotaryPositions(HEAD_WIDTH, 12)
    q, k = torch.randn(2, HEADS, 9, HEAD_WIDTH), torch.randn(2, HEADS, 9, HEAD_WIDTH)
    half = HEAD_WIDTH // 2
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, HEAD_WIDTH, 2, dtype=torch.float32) / HEAD_WIDTH))
    angles = torch.arange(12, dtype=torch.float32).unsqueeze(1) * inv_freq
    angles = torch.cat([angles, angles], dim=-1)[:9]
    cos, sin = angles.cos(), angles.sin()

    def rotate_half(x):
        return torch.cat([-x[..., half:], x[..., :half]], dim=-1)

    rq, rk = rotary.rotate(q, k)
    assert torch.equal(rq, q * cos + rotate_half(q) * sin)
    assert torch.equal(rk, k * cos + rotate_half(k) * sin)


def test_rotary_scores_depend_on_distance_only():
    """The same q at every position and the same k at every position: after rotation
    q_m . k_n depends on m - n alone, and does change with it."""
    rotary = RotaryPositions(HEAD_WIDTH, 12)
    q = torch.randn(HEAD_WIDTH).expand(1, 1, 10, HEAD_WIDTH)
    k = torch.randn(HEAD_WIDTH).expand(1, 1, 10, HEAD_WIDTH)
    rq, rk = rotary.rotate(q, k)
    scores = (rq @ rk.transpose(-1, -2))[0, 0]  # (T, T)
    for m in range(9):
        for n in range(9):
            assert abs(scores[m + 1, n + 1] - scores[m, n]) < 1e-4, (m, n)
    distances = torch.tensor([scores[5, 5 - d].item() for d in range(5)])
    assert (distances[1:] - distances[0]).abs().min() > 1e-3, "scores must change with distance"
    torch.testing.assert_close(scores[3, 3], q[0, 0, 0] @ k[0, 0, 0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("positions", ["none", "rotary", "sinusoidal", "learned"])
def test_positions_break_permutation_equivariance(positions):
    """Without positions and convolutions, attention is permutation-equivariant: a
    permuted input gives the permuted output. Any kind of positions must break that."""
    model = encoder(positions=positions, local_window=0)
    if positions == "learned":
        with torch.no_grad():
            model.positions.table.weight.normal_(std=1.0)
    x = torch.randn(1, 8, WIDTH)
    lengths = torch.tensor([8])
    perm = torch.tensor([3, 0, 7, 1, 6, 2, 5, 4])
    with torch.no_grad():
        y = model(x, lengths)
        y_perm = model(x[:, perm], lengths)
    gap = (y_perm - y[:, perm]).abs().max().item()
    if positions == "none":
        assert gap < 1e-5
    else:
        assert gap > 1e-2


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_absolute_positions_are_added_to_the_input(positions):
    """An encoder with sinusoidal (learned) positions = the same weights without
    positions, run on x + the table (written out by hand for sinusoidal)."""
    model = encoder(positions=positions, local_window=3)
    plain = encoder(positions="none", local_window=3)
    plain.load_state_dict(model.state_dict(), strict=False)
    x = torch.randn(2, 9, WIDTH)
    lengths = torch.tensor([9, 6])
    table = sinusoidal_ref(9, WIDTH) if positions == "sinusoidal" else model.positions.table.weight[:9].detach()
    with torch.no_grad():
        torch.testing.assert_close(model(x, lengths), plain(x + table, lengths), atol=1e-5, rtol=1e-5)


def test_rotary_encoder_equals_reference_with_rotated_attention():
    """One rotary layer, written with the hand-computed attention and rotation."""
    model = encoder(positions="rotary", local_window=0, depth=1)
    layer = model.layers[0]
    x = torch.randn(2, 7, WIDTH)
    lengths = torch.tensor([7, 4])
    with torch.no_grad():
        h = x + attention_ref(layer_norm_ref(x, layer.attention_norm), layer.attention, lengths, rotate=True)[0]
        ff = layer.feed_forward
        h = h + ff.output(gelu_ref(ff.hidden(layer_norm_ref(h, layer.ff_norm))))
        expected = layer_norm_ref(h, model.final_norm) * lengths_mask(lengths, 7).unsqueeze(-1)
        torch.testing.assert_close(model(x, lengths), expected, atol=1e-5, rtol=1e-5)


# --- Padding --------------------------------------------------------------------------


@pytest.mark.parametrize("positions", ["rotary", "sinusoidal", "learned", "none"])
@pytest.mark.parametrize("norm_first", [True, False])
def test_padding_rows_are_exactly_zero(positions, norm_first):
    model = encoder(positions=positions, norm_first=norm_first, local_window=3)
    x = torch.randn(3, 6, WIDTH)
    lengths = torch.tensor([6, 2, 0])
    with torch.no_grad():
        y = model(x, lengths)
        states, _ = model.forward_with_weights(x, lengths)
    real = lengths_mask(lengths, 6)
    for out in [y] + states:
        assert torch.all(out[~real] == 0)
        assert (out[real].abs().sum(-1) > 0).all()


# --- Hashed embeddings -----------------------------------------------------------------

ROWS = [97, 50, 1024]


def hash_ref(embed: HashEmbed, ids: torch.Tensor) -> torch.Tensor:
    """The universal hash in Python integers on the uint64 ids:
    ((a * low32 + b * high32 + c) mod (2^31 - 1)) mod rows + offset, where the sum is
    computed in int64 and wraps: a * low32 and b * high32 are each below 2^63, but their
    sum is not (the wrapped sum is what released models were trained with)."""
    params = embed.hash_params.tolist()  # (K, F, 3)
    out = torch.zeros(ids.shape[:2] + (len(params),) + ids.shape[2:], dtype=torch.int64)
    offsets = [sum(ROWS[:f]) for f in range(len(ROWS))]
    for b in range(ids.size(0)):
        for t in range(ids.size(1)):
            for f in range(ids.size(2)):
                u = int(ids[b, t, f]) % 2**64
                low, high = u & 0xFFFFFFFF, u >> 32
                for h, coeffs in enumerate(params):
                    a, bb, c = coeffs[f]
                    total = (a * low + bb * high + c + 2**63) % 2**64 - 2**63  # int64 wrap-around
                    out[b, t, h, f] = total % 2147483647 % ROWS[f] + offsets[f]
    return out


def test_hash_equals_python_reference():
    embed = HashEmbed(ROWS, 8, n_hashes=2, dropout=0.0)
    ids = torch.randint(-(2**63), 2**63 - 1, (2, 5, 3))
    ids[0, 0] = torch.tensor([0, -1, 2**32])  # zero, all bits set, only a high bit
    assert torch.equal(embed.row_ids(ids), hash_ref(embed, ids))


@pytest.mark.parametrize("varying", ["random", "high", "low"])
def test_hash_spreads_distinct_ids(varying):
    """2000 distinct ids into 4096 rows: each hash fills about R(1 - exp(-N/R)) = 1580
    distinct rows, and (almost) no two ids share both rows. Ids that differ only in
    their high (or low) 32 bits must spread as well as random ones."""
    n, rows = 2000, 4096
    embed = HashEmbed([rows], 8, n_hashes=2, dropout=0.0)
    values = torch.randperm(2**20)[:n].to(torch.int64) * 7919 + 12345
    if varying == "random":
        ids = torch.randint(-(2**63), 2**63 - 1, (n,))
    elif varying == "high":
        ids = (values << 32) | 0x5BD1E995
    else:
        ids = values | (0x1B873593 << 32)
    assert ids.unique().numel() == n
    hashed = embed.row_ids(ids.view(1, n, 1))[0, :, :, 0]  # (N, K)
    for h in range(2):
        assert hashed[:, h].unique().numel() > 1450
    pairs = {tuple(row) for row in hashed.tolist()}
    assert len(pairs) >= n - 3


def test_embedding_sums_hashed_rows_then_mixes():
    embed = HashEmbed(ROWS, 8, n_hashes=2, dropout=0.0).eval()
    ids = torch.randint(-(2**63), 2**63 - 1, (2, 4, 3))
    rows = hash_ref(embed, ids)  # (B, T, K, F)
    vectors = embed.table.weight[rows].sum(dim=2).reshape(2, 4, -1)  # (B, T, F*D)
    mixed = vectors @ embed.mix.weight.T + embed.mix.bias
    with torch.no_grad():
        torch.testing.assert_close(embed(ids), layer_norm_ref(mixed, embed.norm), atol=1e-5, rtol=1e-5)


# --- Feature dropout -----------------------------------------------------------------


def mixing_input(embed: HashEmbed, ids: torch.Tensor) -> torch.Tensor:
    captured = {}
    hook = embed.mix.register_forward_hook(lambda module, inputs, output: captured.update(x=inputs[0]))
    embed(ids)
    hook.remove()
    return captured["x"].reshape(ids.shape + (-1,))  # (B, T, F, D)


def test_feature_dropout_has_its_exact_rates_in_training_and_none_at_inference():
    """20,000 tokens per attribute: the dropped fraction is within 5 binomial standard
    deviations of each rate; kept attributes are not rescaled; eval drops nothing."""
    rates = [0.0, 0.5, 0.1, 0.3]
    embed = HashEmbed([50, 20, 30, 40], 4, n_hashes=1, dropout=0.0, feature_dropout=rates)
    ids = torch.randint(-(2**62), 2**62, (4, 5000, 4))
    full = embed.table(embed.row_ids(ids)).sum(dim=2)  # (B, T, F, D)
    embed.train()
    seen = mixing_input(embed, ids)
    dropped = (seen == 0).all(dim=-1)  # (B, T, F)
    assert torch.equal(seen[~dropped], full[~dropped])
    for f, rate in enumerate(rates):
        sigma = math.sqrt(max(rate * (1 - rate), 1e-12) / 20000)
        assert abs(dropped[..., f].float().mean().item() - rate) <= 5 * sigma, (f, rate)
    embed.eval()
    assert torch.equal(mixing_input(embed, ids), full)


def test_tok2vec_encoder_is_embedding_then_encoder():
    encoder_config = EncoderConfig(**TINY)
    model = Tok2VecEncoder(EmbedConfig(attrs=["NORM", "SHAPE"], rows=[50, 20], width=WIDTH, dropout=0.0), encoder_config).eval()
    ids = torch.randint(-(2**62), 2**62, (2, 5, 2))
    lengths = torch.tensor([5, 3])
    with torch.no_grad():
        torch.testing.assert_close(model(ids, lengths), model.encoder(model.embed(ids), lengths))
