"""Our layers inside a spaCy model: the node names, written once, and the one way to
reach a node's torch wrapper, shim and module.

    component.model  (spaCy's, or ours)
      ... node "spacy-encoder.tok2vec" | "spacy-encoder.encoder"   (`layers`)
            .layers[0]   the torch wrapper, "pytorch" | "pytorch_script"   (`shims.torch_layer`)
              .shims[0]  EncoderShim | ScriptedEncoderShim
                ._model  the torch module (eager, TorchScript, frozen or int8)

    node "spacy-encoder.onnx_tok2vec" | "spacy-encoder.onnx_encoder"   (`onnx_layer`)
      .layers[0]   the layer "onnx": attrs["graph"] holds the serialized ONNX graph

Nothing else in the package indexes into a node's layers or shims. No torch import:
this module only walks thinc models.
"""
from __future__ import annotations

from typing import Any, Iterator, Tuple

from thinc.api import Model

TOK2VEC = "spacy-encoder.tok2vec"
ENCODER = "spacy-encoder.encoder"
NAMES = (TOK2VEC, ENCODER)
# A tok2vec, or an encoder for the `encode` slot, whose encoder is an ONNX graph run by
# onnxruntime (`onnx_layer`): the same features and windows, no torch module, so only
# `onnx_graph_layer` below applies to them.
ONNX_TOK2VEC = "spacy-encoder.onnx_tok2vec"
ONNX_ENCODER = "spacy-encoder.onnx_encoder"
ONNX_NAMES = (ONNX_TOK2VEC, ONNX_ENCODER)


def component_model(nlp: Any, component: str, layer: str, who: str, error: type = ValueError) -> Model:
    """The model of pipeline component `component`, or its node ref `layer` ("" for the
    whole model), as `[pretraining]` names them; raises `error` in one line naming `who`
    and the pipeline's components when there is no such component."""
    if component not in nlp.pipe_names:
        raise error(f"{who}: no component {component!r} in the pipeline ({', '.join(nlp.pipe_names)})")
    model = nlp.get_pipe(component).model
    return model.get_ref(layer) if layer else model


def encoder_nodes(model: Model, names: Tuple[str, ...] = NAMES) -> Iterator[Model]:
    """Each of our encoder nodes inside `model` (itself included), in walk order."""
    for node in model.walk():
        if node.name in names:
            yield node


def pipeline_encoders(nlp: Any, names: Tuple[str, ...] = NAMES) -> Iterator[Tuple[str, Model]]:
    """(component name, node) for each of our encoder nodes in a pipeline's components."""
    for name, component in nlp.components:
        model = getattr(component, "model", None)
        if isinstance(model, Model):
            for node in encoder_nodes(model, names):
                yield name, node


def torch_wrapper(node: Model) -> Model:
    """The thinc layer that wraps the torch module of one of our encoder nodes."""
    return node.layers[0]


def wrapper_shim(wrapper: Model) -> Any:
    """The shim (`shims.EncoderShim` or `ScriptedEncoderShim`) of a torch wrapper."""
    return wrapper.shims[0]


def encoder_shim(node: Model) -> Any:
    """The shim of an encoder node's torch wrapper."""
    return wrapper_shim(torch_wrapper(node))


def torch_module(node: Model) -> Any:
    """The torch module of an encoder node: eager, TorchScript, or optimized for
    inference (see `shims.inference_only`); None for a scripted placeholder that no
    saved graph has filled yet."""
    return encoder_shim(node)._model


def onnx_graph_layer(node: Model) -> Model:
    """The layer of an ONNX node that runs its graph: `attrs["graph"]` holds the
    serialized ONNX model."""
    if node.name not in ONNX_NAMES:
        raise ValueError(f"{node.name} is not an ONNX node ({' or '.join(ONNX_NAMES)})")
    return node.layers[0]
