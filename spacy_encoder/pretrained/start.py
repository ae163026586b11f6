"""Start a vectors encoder from pretrained weights that had no vectors.

spaCy's `[initialize] init_tok2vec` loads a tok2vec only into the exact architecture it
was pretrained with, and through Thinc's `Model.from_bytes`, which also overwrites the
layer's attributes with the saved ones (a vectors layer would come out believing it has
`vectors_width` 0). A vectors config (`TransformerTok2Vec.v2` with `vectors_width` > 0)
has one more input to its embedding mixer: the projected static vector. This callback
loads only the torch weights, and starts the mixer's vector columns at zero, so at step
0 the encoder computes exactly what the pretrained one did, and training learns how
much to take from the vectors. Everything else must match, or it fails naming both.

In a config (after `[initialize] init_tok2vec = null`):

    [initialize.after_init]
    @callbacks = "spacy-encoder.start_from_pretrained.v1"
    name = "en-wiki-128"
"""
from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import srsly
import torch
from spacy.language import Language
from thinc.api import Model

from ..nodes import TOK2VEC, component_model, encoder_nodes, torch_module
from ..weights import encoder_depth, shape_summary
from . import PretrainedError, weights_path

logger = logging.getLogger("spacy_encoder")

_MIX = "embed.mix.weight"
_PROJ = "embed.vectors_proj.weight"
_MIX_BIAS = "embed.mix.bias"
_CHARS = "embed.chars."
_LOG_SCALE = "attention.log_scale"
_LAYERS = "encoder.layers."


def create_start_from_pretrained_v1(
    name: Optional[str] = None, path: Optional[str] = None, component: str = "tok2vec", layer: str = ""
) -> Callable[[Language], Language]:
    """`spacy-encoder.start_from_pretrained.v1`: `.v2` with every pretrained layer."""
    return _start_callback("spacy-encoder.start_from_pretrained.v1", name, path, component, layer, None)


def create_start_from_pretrained_v2(
    name: Optional[str] = None,
    path: Optional[str] = None,
    component: str = "tok2vec",
    layer: str = "",
    layers: Optional[List[int]] = None,
) -> Callable[[Language], Language]:
    """`spacy-encoder.start_from_pretrained.v2`, an `[initialize] after_init` callback:
    load a shipped encoder (`name`, see `spacy-encoder pretrain list`) or a `spacy pretrain`
    output (`path`) into the encoder of `component` (and its `layer` ref, as in
    `[pretraining]`), with or without static vectors in the config. Exactly one of
    `name` and `path` is given. `layers` (`.v2`) picks the pretrained layers, in order,
    that the config's encoder starts from: `[0, 1]` starts a 2-layer encoder from the
    bottom two of a 4-layer one; null takes them all (the depths must match)."""
    return _start_callback("spacy-encoder.start_from_pretrained.v2", name, path, component, layer, layers)


def _start_callback(
    callback: str, name: Optional[str], path: Optional[str], component: str, layer: str, layers: Optional[List[int]]
) -> Callable[[Language], Language]:
    if (name is None) == (path is None):
        raise PretrainedError(
            f"{callback}: give exactly one of name (a shipped encoder) and path (a spacy pretrain .bin)"
        )
    if layers is not None and (not layers or len(set(layers)) != len(layers) or min(layers) < 0):
        raise PretrainedError(f"{callback}: layers must be distinct pretrained layer numbers from 0, got {list(layers)}")

    def after_init(nlp: Language) -> Language:
        source = weights_path(name) if name is not None else Path(str(path))
        if nlp.config.get("initialize", {}).get("init_tok2vec"):
            raise PretrainedError(
                f"{callback}: [initialize] init_tok2vec is set too; "
                "set it to null, or the two would load weights into the same encoder"
            )
        model = component_model(nlp, component, layer, callback, PretrainedError)
        start_from_pretrained(model, source, layers=layers)
        return nlp

    return after_init


def read_pretrained_state(source: Path) -> dict[str, torch.Tensor]:
    """The torch state_dict inside a tok2vec file written by `spacy pretrain`."""
    if not source.exists():
        raise PretrainedError(f"spacy-encoder: no pretrained weights at {source}")
    try:
        msg = srsly.msgpack_loads(source.read_bytes())
        shims = [shim for node in msg["shims"] for shim in node]
        params = [param for node in msg["params"] for param in node]
    except Exception:
        raise PretrainedError(f"spacy-encoder: {source} is not a tok2vec written by spacy pretrain") from None
    if len(shims) != 1 or params:
        raise PretrainedError(
            f"spacy-encoder: {source} is not a spacy-encoder tok2vec (it has {len(shims)} torch layers and "
            f"{len(params)} Thinc parameters; expected 1 and 0)"
        )
    try:
        state = torch.load(io.BytesIO(srsly.msgpack_loads(shims[0])["state"]), map_location="cpu", weights_only=True)
    except Exception as err:
        raise PretrainedError(f"spacy-encoder: the weights in {source} could not be read ({type(err).__name__})") from None
    return state


def _spread_to_pieces(state: dict[str, torch.Tensor], ours: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A linear mixer's weights for a maxout mixer of k pieces (`mix_pieces`): each output
    unit's row goes to all its k pieces, plus noise of the mixer's initial scale
    (std 0.02) so that the pieces do not stay tied; the max of the pieces then starts
    close to the pretrained output."""
    mix, bias = state.get(_MIX), state.get(_MIX_BIAS)
    if mix is None or _MIX not in ours or ours[_MIX].shape[0] == mix.shape[0]:
        return state
    pieces, rest = divmod(ours[_MIX].shape[0], mix.shape[0])
    if rest or pieces < 2 or ours[_MIX].shape[1] != mix.shape[1]:
        return state  # does not fit: load_state_dict names both shapes
    state = dict(state)
    state[_MIX] = mix.repeat_interleave(pieces, dim=0) + 0.02 * torch.randn(ours[_MIX].shape, dtype=mix.dtype)
    if bias is not None:
        state[_MIX_BIAS] = bias.repeat_interleave(pieces, dim=0)
    return state


def _pick_layers(state: dict[str, torch.Tensor], layers: Sequence[int], depth: int) -> dict[str, torch.Tensor]:
    """`state` with only the pretrained encoder layers in `layers`, renumbered from 0 in
    that order, for a config whose encoder has `depth` layers."""
    theirs = encoder_depth(state)
    if max(layers) >= theirs:
        raise PretrainedError(f"spacy-encoder: layers {list(layers)} asks for a layer the pretrained encoder lacks (it has {theirs}: 0 to {theirs - 1})")
    if len(layers) != depth:
        raise PretrainedError(f"spacy-encoder: layers {list(layers)} names {len(layers)} pretrained layers for a config of depth {depth}")
    picked = {key: value for key, value in state.items() if not key.startswith(_LAYERS)}
    for ours, number in enumerate(layers):
        prefix = f"{_LAYERS}{number}."
        picked.update({f"{_LAYERS}{ours}.{key[len(prefix):]}": value for key, value in state.items() if key.startswith(prefix)})
    return picked


def _new_input_names(keys: list[str]) -> str:
    names = ["static vectors"] if _PROJ in keys else []
    return ", ".join(names + (["characters"] if any(key.startswith(_CHARS) for key in keys) else []))


def start_from_pretrained(model: Model, source: Path, layers: Optional[Sequence[int]] = None) -> None:
    """Load the pretrained weights at `source` into the spacy-encoder tok2vec inside
    `model`, in place. Where `model` has static vectors or a character encoder and the
    weights do not, those keep their initial values and the mixer's columns for them
    start at zero. `layers`: the pretrained layers to start from, in order (all if None)."""
    nodes = list(encoder_nodes(model, (TOK2VEC,)))
    if len(nodes) != 1:
        raise PretrainedError(
            f"spacy-encoder: expected one spacy-encoder tok2vec in {model.name!r}, found {len(nodes)}"
        )
    module = torch_module(nodes[0])
    ours = module.state_dict()
    state = read_pretrained_state(source)
    theirs = shape_summary(state)  # before the vector columns are added
    if layers is not None:
        state = _pick_layers(state, layers, encoder_depth(ours))
    # Inputs the pretrained encoder did not have (the static-vector projection, the
    # character encoder) keep their initial values, and their mixer columns (after the
    # hashed features', in that order) start at zero.
    new_inputs = [key for key in ours if key not in state and (key == _PROJ or key.startswith(_CHARS))]
    added = bool(new_inputs)
    if added and _MIX in state and state[_MIX].dim() == 2:
        mix = state[_MIX]
        extra = ours[_MIX].shape[1] - mix.shape[1]
        if extra > 0 and ours[_MIX].shape[0] % mix.shape[0] == 0:
            zeros = torch.zeros(mix.shape[0], extra, dtype=mix.dtype)
            state = {**state, _MIX: torch.cat([mix, zeros], dim=1)}
            state.update({key: ours[key].detach().cpu() for key in new_inputs})
    state = _spread_to_pieces(state, ours)
    # A learned attention scale starts at the fixed one the pretrained encoder had.
    state.update({key: ours[key].detach().cpu() for key in ours if key.endswith(_LOG_SCALE) and key not in state})
    try:
        module.load_state_dict({key: value.to(ours[key].device) if key in ours else value for key, value in state.items()})
    except Exception:
        raise PretrainedError(
            f"spacy-encoder: the pretrained weights in {source} do not fit the config's encoder "
            f"(weights: {theirs}; config: {shape_summary(ours)})"
        ) from None
    what = f"; the columns of its new inputs ({_new_input_names(new_inputs)}) start at zero" if added else ""
    picked = f" (its layers {list(layers)})" if layers is not None else ""
    logger.info("Started the encoder from %s%s%s", source, picked, what)
