"""The accessor for our encoder nodes (`spacy_encoder.nodes`) on real models."""
import spacy
import torch

from spacy_encoder import nodes
from spacy_encoder.deploy import script_encoder
from spacy_encoder.pytorch import Tok2VecEncoder, TransformerEncoder

SMALL = dict(width=32, depth=1, n_heads=2, ff_width=64, max_length=32, window_stride=24)


def build(name, **settings):
    return spacy.registry.architectures.get(name)(**settings)


def test_the_node_names_are_those_of_the_built_layers():
    tok2vec = build("spacy-encoder.TransformerTok2Vec.v1", **SMALL)
    encoder = build("spacy-encoder.TransformerEncoder.v1", **SMALL)
    assert tok2vec.name == nodes.TOK2VEC and encoder.name == nodes.ENCODER
    assert isinstance(nodes.torch_module(tok2vec), Tok2VecEncoder)
    assert isinstance(nodes.torch_module(encoder), TransformerEncoder)
    assert nodes.encoder_shim(tok2vec)._model is nodes.torch_module(tok2vec)


def test_nodes_are_found_inside_a_pipeline_and_a_component_model():
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec", config={"model": {"@architectures": "spacy-encoder.TransformerTok2Vec.v1", **SMALL}})
    embed = {
        "@architectures": "spacy.MultiHashEmbed.v2",
        "width": 32,
        "attrs": ["NORM"],
        "rows": [100],
        "include_static_vectors": False,
    }
    slot = {"@architectures": "spacy.Tok2Vec.v2", "embed": embed, "encode": {"@architectures": "spacy-encoder.TransformerEncoder.v1", **SMALL}}
    nlp.add_pipe("ner", config={"model": {"@architectures": "spacy.TransitionBasedParser.v2", "state_type": "ner", "extra_state_tokens": False, "hidden_width": 16, "maxout_pieces": 2, "use_upper": False, "tok2vec": slot}})
    found = [(name, node.name) for name, node in nodes.pipeline_encoders(nlp)]
    assert found == [("tok2vec", nodes.TOK2VEC), ("ner", nodes.ENCODER)]
    assert [name for name, _ in nodes.pipeline_encoders(nlp, (nodes.ENCODER,))] == ["ner"]
    assert list(nodes.encoder_nodes(nlp.get_pipe("ner").model, (nodes.TOK2VEC,))) == []


def test_the_accessor_follows_a_swapped_module():
    tok2vec = build("spacy-encoder.TransformerTok2Vec.v1", **SMALL).initialize()
    script_encoder(tok2vec)
    assert nodes.torch_wrapper(tok2vec).name == "pytorch_script"
    assert isinstance(nodes.torch_module(tok2vec), torch.jit.ScriptModule)


def test_the_onnx_graph_layer_is_reached_through_the_accessor():
    onnx_tok2vec = build("spacy-encoder.OnnxTok2Vec.v1", width=32, attrs=["NORM", "SHAPE"], max_length=32, window_stride=24)
    assert onnx_tok2vec.name == nodes.ONNX_TOK2VEC
    layer = nodes.onnx_graph_layer(onnx_tok2vec)
    assert layer.name == "onnx" and layer.attrs["graph"] == b""
    onnx_encoder = build("spacy-encoder.OnnxEncoder.v1", width=32, max_length=32, window_stride=24)
    assert onnx_encoder.name == nodes.ONNX_ENCODER
    assert nodes.onnx_graph_layer(onnx_encoder).name == "onnx"
    tok2vec = build("spacy-encoder.TransformerTok2Vec.v1", **SMALL)
    try:
        nodes.onnx_graph_layer(tok2vec)
    except ValueError as err:
        assert nodes.ONNX_TOK2VEC in str(err)
    else:
        raise AssertionError("an eager tok2vec has no ONNX graph layer")
