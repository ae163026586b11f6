"""`spacy-encoder.TransformerTok2Vec.v4`: a character encoder beside the hashed features,
and the scale of the attention logits. Its defaults compute what v3 computes (the golden
test holds it to v2's record); `chars` reads each token's first and last bytes through a
small CNN; `attention_scale` is "sqrt", "learned" or "none"."""
import numpy
import pytest
import spacy
import torch
from confection import ConfigValidationError

from spacy_encoder.nodes import TOK2VEC, encoder_nodes, torch_module
from spacy_encoder.pytorch import EncoderConfig, TransformerEncoder
from spacy_encoder.pytorch.characters import NO_CHAR, CharEncoder, reading_order

from .test_pretrained import DEFAULT, shelf, ship, vectors_start  # noqa: F401 (shelf: a fixture)
from .test_training import NER_DATA
from .test_unseen_words import TWINS, v3_nlp
from .test_vectors import SMALL, ner_examples

V4 = "spacy-encoder.TransformerTok2Vec.v4"


def char_array(nlp, text, n_chars):
    return torch.tensor(nlp.make_doc(text).to_utf8_array(nr_char=n_chars), dtype=torch.int64)


def test_the_reading_order_gives_short_words_whole_and_long_ones_their_ends():
    nlp = spacy.blank("en")
    rows = char_array(nlp, "Zürich Babbage-Smithsonian a", 8)[:, reading_order(8)]
    words = [bytes(b for b in row.tolist() if b != NO_CHAR).decode("utf-8", "replace") for row in rows]
    assert words == ["Zürich", "Babbage", "-", "Smitnian", "a"]  # "Smithsonian": first 4 and last 4 bytes


def test_a_token_vector_depends_on_its_own_bytes_only():
    torch.manual_seed(0)
    encoder = CharEncoder(16, 24).eval()
    nlp = spacy.blank("en")
    alone = encoder(char_array(nlp, "Okonjo-Iweala", 16)[None])  # (1, 3, 24)
    batch = torch.zeros((2, 6, 16), dtype=torch.int64)  # byte 0 where a row is padding
    batch[1, 2:5] = char_array(nlp, "Okonjo-Iweala", 16)
    in_batch = encoder(batch)
    torch.testing.assert_close(in_batch[1, 2:5], alone[0], rtol=0, atol=1e-6)
    no_bytes = torch.full((1, 1, 16), NO_CHAR, dtype=torch.int64)
    assert encoder(no_bytes).abs().max().item() == 0.0  # pools to zero, not -inf
    scripted = torch.jit.script(encoder)
    torch.testing.assert_close(scripted(batch), in_batch, rtol=0, atol=0)


@pytest.mark.parametrize(
    "setting, value, field",
    [
        ({"chars": 3}, 3, "chars"),
        ({"chars": 128}, 128, "chars"),
        ({"chars": 16, "char_width": 1}, 1, "char_width"),
        ({"attention_scale": "cubic"}, "cubic", "attention_scale"),
    ],
)
def test_bad_v4_settings_name_the_field(setting, value, field):
    with pytest.raises(ConfigValidationError) as info:
        spacy.registry.architectures.get(V4)(**SMALL, **setting)
    assert field in str(info.value) and str(value) in str(info.value)


def test_a_learned_attention_scale_starts_as_the_fixed_one_and_none_is_sharper():
    config = dict(width=32, depth=2, n_heads=4, ff_width=64, dropout=0.0)
    x, lengths = torch.randn(2, 7, 32), torch.tensor([7, 4])
    outputs = {}
    for scale in ("sqrt", "learned", "none"):
        torch.manual_seed(0)
        module = TransformerEncoder(EncoderConfig(**config, attention_scale=scale)).eval()
        with torch.no_grad():  # weights large enough for the scale to matter
            for layer in module.layers:
                layer.attention.qkv.weight.copy_(torch.randn(layer.attention.qkv.weight.shape) * 0.3)
        outputs[scale] = module(x, lengths)
        _, weights = module.forward_with_weights(x, lengths)
        outputs[scale + "/entropy"] = -(weights[0] * weights[0].clamp_min(1e-12).log()).sum(-1)[0].mean()
    torch.testing.assert_close(outputs["learned"], outputs["sqrt"], rtol=0, atol=1e-5)
    assert outputs["none/entropy"] < 0.9 * outputs["sqrt/entropy"]  # un-scaled: sharper weights


def v4_nlp(tmp_path, **model):
    tmp_path.mkdir(parents=True, exist_ok=True)
    return v3_nlp(tmp_path, architecture=V4, **model)


def test_with_chars_unknown_twins_differ_by_their_spelling(tmp_path):
    """Two unknown words alike in PREFIX, SUFFIX and SHAPE: rare-word dropout gives them
    one NORM id, so without characters they are the same input; the character encoder
    reads their middles apart."""
    outputs = {}
    for chars in (0, 16):
        nlp = v4_nlp(tmp_path / str(chars), rare_word_dropout=0.5, chars=chars, char_width=16)
        nlp.initialize(lambda: ner_examples(nlp))
        tok2vec = nlp.get_pipe("tok2vec").model
        outputs[chars] = [tok2vec.predict([nlp.make_doc(f"{w} visited Berlin .")])[0] for w in TWINS]
    numpy.testing.assert_allclose(outputs[0][0], outputs[0][1], atol=1e-6)
    assert not numpy.allclose(outputs[16][0][0], outputs[16][1][0], atol=1e-3)


@pytest.fixture(scope="module")
def trained_v4(tmp_path_factory):
    """A small v4 pipeline with characters, a learned attention scale and rare-word
    dropout, trained a few steps and saved."""
    tmp_path = tmp_path_factory.mktemp("v4")
    nlp = v4_nlp(tmp_path, rare_word_dropout=0.5, mix_pieces=3, chars=16, char_width=16, attention_scale="learned")
    optimizer = nlp.initialize(lambda: ner_examples(nlp))
    for _ in range(5):
        nlp.update(ner_examples(nlp), sgd=optimizer)
    nlp.to_disk(tmp_path / "eager")
    return tmp_path / "eager"


TEXTS = [f"{TWINS[0]} met Ngozi Okonjo-Iweala in Zürich .", "Apple", "", " ".join(t for t, _ in NER_DATA) * 3]


def test_a_trained_v4_saves_and_loads_with_equal_predictions(trained_v4):
    nlp = spacy.load(trained_v4)
    node = next(encoder_nodes(nlp.get_pipe("tok2vec").model, (TOK2VEC,)))
    assert node.attrs["chars"] == 16
    module = torch_module(node)
    assert module.embed.chars.conv.weight.shape[0] == 16
    scales = module.encoder.layers[0].attention.log_scale.detach().flatten()
    assert not torch.allclose(scales, torch.full_like(scales, scales[0].item()))  # learned, per head
    again = spacy.load(trained_v4)
    for a, b in zip(nlp.pipe(TEXTS), again.pipe(TEXTS)):
        numpy.testing.assert_allclose(a.tensor, b.tensor, atol=1e-6)


@pytest.mark.parametrize("form", ["script", "script-int8", "onnx", "onnx-int8"])
def test_deployed_v4_pipelines_compute_what_eager_does(trained_v4, tmp_path, form):
    from spacy_encoder.deploy import script_pipeline

    kind, _, optimize = form.partition("-")
    if kind == "onnx":
        pytest.importorskip("onnxruntime")
        from spacy_encoder.onnx_export import onnx_pipeline as convert
    else:
        convert = script_pipeline
    convert(trained_v4, tmp_path / form, optimize=optimize or "none")
    eager, deployed = spacy.load(trained_v4), spacy.load(tmp_path / form)
    node = next(n for n in deployed.get_pipe("tok2vec").model.walk() if "chars" in n.attrs)
    assert node.attrs["chars"] == 16
    for a, b in zip(eager.pipe(TEXTS), deployed.pipe(TEXTS)):
        assert a.tensor.shape == b.tensor.shape
        if not len(a):
            continue
        if optimize:
            cosine = (a.tensor * b.tensor).sum(1) / (numpy.linalg.norm(a.tensor, axis=1) * numpy.linalg.norm(b.tensor, axis=1))
            assert cosine.min() > 0.9 and cosine.mean() > 0.97
        else:
            numpy.testing.assert_allclose(a.tensor, b.tensor, atol=1e-4)


def test_a_standalone_export_of_v4_with_chars_is_refused_in_one_line(tmp_path):
    from spacy_encoder.deploy import DeployError, export_encoder

    nlp = v4_nlp(tmp_path, rare_word_dropout=0.0, chars=16, char_width=16)  # no counts: the bytes speak
    nlp.initialize(lambda: ner_examples(nlp))
    nlp.to_disk(tmp_path / "eager")
    with pytest.raises(DeployError) as info:
        export_encoder(tmp_path / "eager", tmp_path / "encoder.pt", component="tok2vec", fmt="torchscript")
    message = str(info.value)
    assert "\n" not in message and "chars = 16" in message and "deploy script" in message


def test_a_v4_start_from_weights_pretrained_without_chars_computes_what_they_did(shelf):
    """The pretrained start into v4 with characters and a learned scale: the character
    columns of the mixer start at zero and the scale at 1/sqrt(head width), so at step 0
    the encoder computes what the pretrained one does."""
    folder, tok2vec = shelf
    ship(folder, DEFAULT, tok2vec.to_bytes())
    nlp = vectors_start(**{"@architectures": V4, "chars": 16, "char_width": 16, "attention_scale": "learned", "mix_pieces": 1})
    doc = nlp.make_doc("Angela Merkel visited Paris .")
    numpy.testing.assert_allclose(nlp.get_pipe("tok2vec").model.predict([doc])[0], tok2vec.predict([doc])[0], atol=1e-5)
    module = torch_module(next(encoder_nodes(nlp.get_pipe("tok2vec").model, (TOK2VEC,))))
    assert module.embed.mix.weight[:, -16:].abs().max().item() == 0.0
    assert module.embed.chars.conv.weight.abs().max().item() > 0.0  # its own initial values
