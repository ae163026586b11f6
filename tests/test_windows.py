"""Long docs on real, non-periodic text: every window, the first and the end-aligned
last, against running that window alone, with the window rule written out again here
("each token takes its vector from the window in which it sits most centrally")."""
import numpy
import pytest
import spacy
import torch

from spacy_encoder import layers
from spacy_encoder.architectures import build_transformer_encoder_v1, build_transformer_tok2vec_v1
from spacy_encoder.pytorch import DocEncoder, EmbedConfig, EncoderConfig, Tok2VecEncoder, doc_windows

from .conftest import REPO
from .test_layers import ENCODER_ARGS

MAX_LENGTH, STRIDE = 16, 10
ARGS = dict(ENCODER_ARGS, width=16, n_heads=2, ff_width=32, max_length=MAX_LENGTH, window_stride=STRIDE)
TOK2VEC_ARGS = dict(ARGS, attrs=["NORM", "PREFIX", "SUFFIX", "SHAPE"], rows=[200, 50, 50, 50], n_hashes=2, embed_dropout=0.0)


def real_words(n: int):
    """The first `n` tokens of WikiGold: real text, no period."""
    words = []
    for line in (REPO / "corpus" / "wikigold" / "wikigold.conll.txt").read_text(encoding="utf8").splitlines():
        parts = line.split()
        if parts and parts[0] != "-DOCSTART-":
            words.append(parts[0])
        if len(words) == n:
            return words
    raise AssertionError("corpus too short")


def reference_windows(n: int, max_length: int, stride: int):
    """Window starts every `stride` tokens, the last aligned to the end; each token
    owned by the window whose centre is nearest (a tie goes to the later window)."""
    if n <= max_length:
        return [0] * min(n, 1), [0] * n
    starts = list(range(0, n - max_length, stride)) + [n - max_length]
    owner = []
    for p in range(n):
        distances = [abs(2 * p - (2 * s + max_length - 1)) for s in starts]
        best = min(distances)
        owner.append(max(i for i, d in enumerate(distances) if d == best))
    return starts, owner


@pytest.mark.parametrize("n_tokens", [0, 1, 15, 16, 17, 25, 26, 27, 40, 101, 333])
@pytest.mark.parametrize("max_length,stride", [(16, 10), (16, 12), (16, 16), (16, 1), (9, 4), (2, 1), (64, 48)])
def test_doc_windows_equal_the_reference_rule(n_tokens, max_length, stride):
    starts, owner = reference_windows(n_tokens, max_length, stride)
    windows = doc_windows(n_tokens, max_length, stride)
    assert [w[0] for w in windows] == starts
    assert all(w[1] == min(max_length, n_tokens) for w in windows)
    got_owner = [i for i, (_, _, own_start, own_end) in enumerate(windows) for _ in range(own_start, own_end)]
    assert got_owner == owner
    # The stated minimum context: (max_length - stride) // 2 tokens on both sides,
    # wherever the doc allows.
    context = (max_length - stride) // 2
    for p, i in enumerate(owner):
        start = starts[i]
        length = windows[i][1]
        assert p - start >= min(context, p), (p, windows[i])
        assert start + length - 1 - p >= min(context, n_tokens - 1 - p), (p, windows[i])


@pytest.fixture(scope="module")
def nlp():
    return spacy.blank("en")


def check_every_window(stitched, run_alone, n: int):
    """Every window's owned tokens equal that window run alone; overlapping windows
    really do give different vectors (context matters, so the test can fail)."""
    windows = doc_windows(n, MAX_LENGTH, STRIDE)
    assert len(windows) >= 4 and windows[-1][0] == n - MAX_LENGTH  # the last is end-aligned
    alone = [run_alone(start, length) for start, length, _, _ in windows]
    for (start, _, own_start, own_end), out in zip(windows, alone):
        numpy.testing.assert_allclose(stitched[own_start:own_end], out[own_start - start : own_end - start], atol=1e-5)
    start_a, start_b = windows[0][0], windows[1][0]
    overlap = slice(start_b, start_a + MAX_LENGTH)
    a = alone[0][overlap.start - start_a : overlap.stop - start_a]
    b = alone[1][overlap.start - start_b : overlap.stop - start_b]
    assert numpy.abs(a - b).max() > 1e-3


def test_tok2vec_every_window_of_a_real_doc(nlp):
    model = build_transformer_tok2vec_v1(**TOK2VEC_ARGS)
    model.initialize()
    doc = nlp.make_doc(" ".join(real_words(67)))
    n = len(doc)
    short = nlp.make_doc(" ".join(real_words(200)[120:127]))
    stitched = model.predict([short, doc])[1]  # a short neighbour in the batch
    check_every_window(stitched, lambda start, length: model.predict([doc[start : start + length].as_doc()])[0], n)


def test_encoder_every_window_of_non_periodic_vectors():
    model = build_transformer_encoder_v1(**ARGS)
    model.initialize()
    X = numpy.random.default_rng(0).normal(size=(59, 16)).astype("f")
    stitched = model.predict([X[:5], X])[1]
    check_every_window(stitched, lambda start, length: model.predict([X[start : start + length]])[0], len(X))


def test_doc_encoder_every_window_of_real_ids(nlp):
    from spacy.attrs import NORM, PREFIX, SHAPE, SUFFIX

    embed = EmbedConfig(rows=[200, 50, 50, 50], width=16, dropout=0.0)
    encoder = EncoderConfig(width=16, depth=2, n_heads=2, ff_width=32, max_length=MAX_LENGTH, window_stride=STRIDE, dropout=0.0)
    module = Tok2VecEncoder(embed, encoder).eval()
    doc = nlp.make_doc(" ".join(real_words(61)))
    ids = torch.from_numpy(layers.extract_features([doc], [NORM, PREFIX, SUFFIX, SHAPE]))
    with torch.no_grad():
        stitched = DocEncoder(module, MAX_LENGTH, STRIDE)(ids).numpy()

        def alone(start, length):
            return module(ids[start : start + length].unsqueeze(0), torch.tensor([length]))[0].numpy()

        check_every_window(stitched, alone, len(doc))
