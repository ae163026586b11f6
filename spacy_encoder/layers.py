"""Thinc layers: Docs to one (n_tokens, width) array each through our torch layer.

Data path of `transformer_tok2vec` (N docs, n_i tokens each, F features, D width):

    docs -> ids (sum n_i, F) uint64 [+ bytes (sum n_i, chars)] -> [static vectors (sum n_i, V)]
         -> windows and buckets (`buckets.run_windows`) -> torch layer
         -> (sum n_i, D) -> N x (n_i, D)

`transformer_encoder` does the same from one (n_i, D) array per doc, for the `encode`
slot of `spacy.Tok2Vec.v2`. The node names are `nodes.TOK2VEC` and `nodes.ENCODER`.
"""
import logging
from typing import Any, Callable, List, Optional, Sequence, Set, Tuple, cast

import numpy
from spacy.attrs import ORTH, intify_attr
from spacy.tokens import Doc
from thinc.api import Model
from thinc.types import Floats2d

from .buckets import run_windows
from .nodes import ENCODER, TOK2VEC
from .rare_words import COUNTS_MISSING, replace_rare

logger = logging.getLogger("spacy_encoder")
# The ids of the layers that have said their rare-word dropout has no counts (once
# each; thinc's model ids are never reused in a process; not saved).
_WARNED_NO_COUNTS: Set[int] = set()


def transformer_tok2vec(
    torch_layer: Model,
    *,
    attrs: List[str],
    width: int,
    max_length: int,
    window_stride: int,
    vectors_width: int = 0,
    architecture: str = "spacy-encoder.TransformerTok2Vec.v1",
    name: str = TOK2VEC,
    rare_word_dropout: float = 0.0,
    chars: int = 0,
) -> Model[List[Doc], List[Floats2d]]:
    """Docs to one (n_tokens, width) array each, through `torch_layer` (a wrapped
    `Tok2VecEncoder`, or `VectorsTok2VecEncoder` when `vectors_width` > 0: then each
    token's row of `doc.vocab.vectors` is looked up and passed in beside its ids).
    `architecture` names the registered builder in error messages; `name` is the
    node's name (`nodes.ONNX_TOK2VEC` around an ONNX graph instead of a torch layer).
    `rare_word_dropout` > 0 maps rare and unknown NORMs to one id (`rare_words`); the
    layer then also holds the training counts (attrs `norm_ids`, `norm_counts`).
    `chars` > 0: each token's first and last bytes (`Doc.to_utf8_array`, that many)
    follow its attribute ids, for the module's character encoder (attr `chars`)."""
    layer_attrs = {
        "attr_ids": [intify_attr(a) for a in attrs],
        "attrs": list(attrs),
        "max_length": max_length,
        "window_stride": window_stride,
        "vectors_width": vectors_width,
        "architecture": architecture,
    }
    if rare_word_dropout > 0.0:
        # Only then: the attrs of the released names' layers stay as they were.
        layer_attrs.update(rare_word_dropout=float(rare_word_dropout), norm_ids=None, norm_counts=None)
    if chars:
        layer_attrs["chars"] = int(chars)
    return Model(
        name,
        _tok2vec_forward,
        init=_tok2vec_init,
        layers=[torch_layer],
        dims={"nO": width},
        attrs=layer_attrs,
    )


def _tok2vec_init(model: Model, X: Optional[List[Doc]] = None, Y: Any = None) -> None:
    # The module's shapes come from the config; the vectors come with the vocab,
    # loaded by [initialize] vectors before the components are initialized.
    if X and model.attrs.get("vectors_width"):
        problem = vectors_mismatch(X[0].vocab.vectors, model.attrs["vectors_width"])
        if problem:
            from confection import ConfigValidationError

            raise ConfigValidationError(
                title=f"Invalid settings for {model.attrs['architecture']}",
                errors=[{"loc": ["vectors_width"], "msg": problem}],
                show_config=False,
            )
    model.layers[0].initialize()


def vectors_mismatch(table: Any, vectors_width: int) -> Optional[str]:
    """Why the pipeline's vectors cannot feed an encoder built for `vectors_width`, or None."""
    n_rows, table_width = table.shape if table.shape else (0, 0)
    if n_rows == 0 or table_width == 0:
        return (
            f"vectors_width is {vectors_width}, but the pipeline's vocab has no vectors: set "
            "[initialize] vectors (e.g. --paths.vectors en_core_web_md, or a `spacy init vectors` "
            "folder), or use vectors_width = 0."
        )
    if table_width != vectors_width:
        return (
            f"vectors_width is {vectors_width}, but the pipeline's vectors have width {table_width}: "
            f"use the vectors the encoder was built for, or vectors_width = {table_width} (and retrain)."
        )
    return None


def static_vectors(model: Model, docs: Sequence[Doc]) -> Any:
    """Each token's static vector, looked up as spaCy's `StaticVectors` does (the
    vectors' own key attribute, ORTH by default; floret tables hash subwords): key to
    row, and zeros for a token with no row. :return: (sum n_i, V) float32."""
    width = model.attrs["vectors_width"]
    docs = [doc for doc in docs if len(doc)]
    if not docs:
        return model.ops.alloc2f(0, width)
    table = docs[0].vocab.vectors
    problem = vectors_mismatch(table, width)
    if problem:
        raise ValueError(f"{model.attrs['architecture']}: {problem}")
    key_attr = getattr(table, "attr", ORTH)
    keys = numpy.concatenate([doc.to_array(key_attr) for doc in docs]).astype("uint64")
    if table.mode == "floret":
        return model.ops.asarray2f(table.get_batch(keys), dtype="float32")
    rows = model.ops.asarray(table.find(keys=keys))
    V = model.ops.asarray2f(model.ops.asarray(table.data)[rows], dtype="float32")
    V[rows < 0] = 0.0
    return V


def _tok2vec_forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    torch_layer = model.layers[0]
    doc_lengths = [len(doc) for doc in docs]
    ids = model.ops.asarray(token_ids(model, docs, is_train))  # (sum n_i, F [+ chars])
    static = static_vectors(model, docs) if model.attrs.get("vectors_width") else None  # (sum n_i, V)
    Y, backprop_windows = run_windows(model, torch_layer, ids, doc_lengths, is_train, pad_value=0, static=static)
    Ys = model.ops.unflatten(Y, model.ops.asarray1i(doc_lengths)) if docs else []

    def backprop(dYs: List[Floats2d]) -> List[Doc]:
        if sum(doc_lengths):
            backprop_windows(model.ops.flatten(dYs))
        return []

    return Ys, backprop


def token_ids(model: Model, docs: Sequence[Doc], is_train: bool = False) -> numpy.ndarray:
    """What the tok2vec `model`'s module reads for each token: its attribute ids
    (rare and unknown NORMs mapped, with rare-word dropout), then its bytes (with a
    character encoder). :return: (sum n_i, F [+ chars]) int64."""
    ids = extract_features(docs, model.attrs["attr_ids"])  # (sum n_i, F)
    if model.attrs.get("rare_word_dropout", 0.0) > 0.0:
        ids = _replace_rare_words(model, ids, is_train)
    n_chars = model.attrs.get("chars", 0)
    if n_chars:
        arrays = [doc.to_utf8_array(nr_char=n_chars) for doc in docs if len(doc)]
        chars = numpy.concatenate(arrays) if arrays else numpy.zeros((0, n_chars), dtype="uint8")
        ids = numpy.concatenate([ids, chars.astype("int64")], axis=1)
    return ids


def _replace_rare_words(model: Model, ids: numpy.ndarray, is_train: bool) -> numpy.ndarray:
    rate = model.attrs["rare_word_dropout"]
    norm_ids, norm_counts = model.attrs.get("norm_ids"), model.attrs.get("norm_counts")
    if norm_ids is None:
        # Nothing is known to be rare or unknown: the layer computes what v2 does. In
        # training that is a config without the counting callback (or `spacy pretrain`):
        # say so once, and train on rather than lose the run.
        if is_train and model.id not in _WARNED_NO_COUNTS:
            logger.warning("%s: %s", model.attrs["architecture"], COUNTS_MISSING.format(rate=rate))
            _WARNED_NO_COUNTS.add(model.id)
        return ids
    column = model.attrs["attrs"].index("NORM")
    return replace_rare(ids, column, norm_ids, norm_counts, rate, is_train)


def extract_features(docs: Sequence[Doc], attr_ids: List[int]) -> numpy.ndarray:
    """Token attribute ids (spaCy's 64-bit hashes) as int64: (sum n_i, F).

    The uint64 ids are reinterpreted, not converted, as int64: torch has no uint64
    arithmetic; the hashing in `HashEmbed` reads the two 32-bit halves.
    """
    arrays = [doc.to_array(attr_ids) for doc in docs if len(doc)]
    if not arrays:
        return numpy.zeros((0, len(attr_ids)), dtype="int64")
    ids = numpy.ascontiguousarray(numpy.concatenate(arrays).reshape((-1, len(attr_ids))), dtype="uint64")
    return ids.view("int64")


def transformer_encoder(
    torch_layer: Model, *, width: int, max_length: int, window_stride: int, name: str = ENCODER
) -> Model[List[Floats2d], List[Floats2d]]:
    """One (n_tokens, width) array per doc in and out, through `torch_layer` (a wrapped
    `TransformerEncoder`), for the `encode` slot of `spacy.Tok2Vec.v2`. `name` is the
    node's name (`nodes.ONNX_ENCODER` around an ONNX graph instead of a torch layer)."""
    return Model(
        name,
        _encoder_forward,
        init=_encoder_init,
        layers=[torch_layer],
        dims={"nI": width, "nO": width},
        attrs={"max_length": max_length, "window_stride": window_stride},
    )


def _encoder_init(model: Model, X: Any = None, Y: Any = None) -> None:
    model.layers[0].initialize()


def _encoder_forward(model: Model, Xs: List[Floats2d], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    doc_lengths = [len(X) for X in Xs]
    width = model.get_dim("nO")
    X = model.ops.flatten(Xs) if Xs else model.ops.alloc2f(0, width)
    if X.shape[1] != width:
        raise ValueError(f"spacy-encoder.TransformerEncoder: expected input width {width}, got {X.shape[1]}.")
    Y, backprop_windows = run_windows(model, model.layers[0], X, doc_lengths, is_train, pad_value=0.0)
    Ys = model.ops.unflatten(Y, model.ops.asarray1i(doc_lengths)) if Xs else []

    def backprop(dYs: List[Floats2d]) -> List[Floats2d]:
        if not sum(doc_lengths):
            return [model.ops.alloc2f(0, width) for _ in Xs]
        dX = cast(Floats2d, backprop_windows(model.ops.flatten(dYs)))
        return model.ops.unflatten(dX, model.ops.asarray1i(doc_lengths))

    return Ys, backprop


def pad_empty(width: Optional[int] = None) -> Model[List[Floats2d], List[Floats2d]]:
    """Give an empty doc's (0, width) array one zero row, so that max, first and last
    pooling (which need a row) work on empty docs; the other docs pass unchanged."""
    return Model("pad_empty", _pad_empty_forward, dims={"nI": width, "nO": width})


def _pad_empty_forward(model: Model, Xs: List[Floats2d], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    empty = [x.shape[0] == 0 for x in Xs]
    Ys = [model.ops.alloc2f(1, x.shape[1]) if e else x for x, e in zip(Xs, empty)]

    def backprop(dYs: List[Floats2d]) -> List[Floats2d]:
        return [dy[:0] if e else dy for dy, e in zip(dYs, empty)]

    return Ys, backprop

