"""Registered architectures (through entry points in pyproject.toml; no import needed):
the builders, and what they share (validation, the torch wrapper).

A released `.vN` never changes behaviour; a change gets a new `.vN+1` beside it.
TorchScript conversion of a built model is `deploy.script_encoder`.
"""
import functools
import logging
from typing import Any, Callable, Dict, List, Optional, Union

import torch
from spacy.tokens import Doc
from thinc.api import CupyOps, Model, PyTorchGradScaler, get_current_ops
from thinc.types import Floats2d

from .layers import pad_empty, transformer_encoder, transformer_tok2vec
from .pytorch import (
    EmbedConfig,
    EncoderConfig,
    Tok2VecEncoder,
    TransformerEncoder,
    VectorsTok2VecEncoder,
    use_fast_dropout,
)
from .shims import quiet_jit, torch_layer
from .validation import check_attrs, check_rare_word_dropout, config_errors
from .windowing import check_windows

logger = logging.getLogger("spacy_encoder")


def build_transformer_tok2vec_v1(
    *,
    width: int,
    depth: int,
    n_heads: int,
    ff_width: int,
    attrs: List[str] = ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
    rows: List[int] = [5000, 1000, 2500, 2500],
    n_hashes: int = 2,
    positions: str = "rotary",
    local_window: int = 3,
    norm_first: bool = True,
    dropout: float = 0.1,
    embed_dropout: float = 0.1,
    max_length: int = 256,
    window_stride: int = 192,
    mixed_precision: bool = False,
    grad_scaler_config: Dict[str, Any] = {},
    torchscript: bool = False,
    feature_dropout: Union[float, List[float]] = 0.0,
    fast_dropout: bool = False,
) -> Model[List[Doc], List[Floats2d]]:
    """A Transformer tok2vec: hashed token features, then a stack of encoder layers,
    all in one torch module. Fits anywhere spaCy takes a tok2vec (inline, or in a
    `tok2vec` component feeding listeners).

    The four sizes (width, depth, n_heads, ff_width) are required; every other
    setting has a default, the value that configs/ner.cfg writes out (except
    feature_dropout, see there), so that `spacy init fill-config` completes a block
    that names only `@architectures` and the sizes. The defaults are part of the
    `.v1` contract and never change (a saved pipeline's config has every value
    written out anyway); new defaults need a new `.vN`. The builder never mutates the
    list and dict defaults.

    width (int): Width of the embeddings and of every layer. Recommended values are 128 to 256.
    depth (int): Number of encoder layers. Recommended values are 2 to 6.
    n_heads (int): Attention heads; must divide `width`. Recommended: width / 32.
    ff_width (int): Hidden width of the feed-forward sub-layers. Recommended: 4 * width.
    attrs (List[str]): Token attributes to embed. Default: ["NORM", "PREFIX", "SUFFIX", "SHAPE"].
    rows (List[int]): Hash-table rows per attribute. Default: [5000, 1000, 2500, 2500].
    n_hashes (int): Hashed rows summed per feature id (1-4). Default: 2.
    positions (str): "rotary", "sinusoidal", "learned" or "none". Default: "rotary".
    local_window (int): Kernel size of the residual convolutions before the first layer
        and first in each layer (local n-gram context); 0 turns them off. Default: 3.
    norm_first (bool): Pre-norm (true) or post-norm (false). Default: true.
    dropout (float): Dropout inside the encoder. spaCy's [training] dropout does not
        reach inside torch modules; set it here. Default: 0.1.
    embed_dropout (float): Dropout on the embeddings. Default: 0.1.
    max_length (int): Longest window the encoder sees; longer docs are split into
        overlapping windows and stitched back. Default: 256 (recommended: 128 to 512).
    window_stride (int): Distance between window starts (<= max_length). Default: 192
        (recommended: 3/4 of max_length).
    mixed_precision (bool): Autocast to fp16 on GPU. Ignored, with a warning, on CPU.
        Default: false.
    grad_scaler_config (dict): Arguments of thinc's PyTorchGradScaler for mixed precision,
        e.g. {"init_scale": 32768.0}. Default: {} (thinc's defaults).
    torchscript (bool): Run the encoder as a TorchScript module (torch.jit.script).
        Default: false.
    feature_dropout (Union[float, List[float]]): In training, the chance that one
        attribute (NORM, PREFIX, ...) of one token is zeroed: word dropout, so that unseen
        words are read from their spelling and context. One rate for all attributes, or
        one per attribute in the order of `attrs` (e.g. [0.3, 0.15, 0.15, 0.15] drops
        whole words more often than their affixes and shape). Default: 0 (off), so
        configs written before it keep their meaning; the configs in configs/ set 0.15
        (ner, textcat).
    fast_dropout (bool): In training on the CPU, draw the dropout masks from 16-bit random
        lanes instead of one float per element (`spacy_encoder.pytorch.FastDropout`):
        the same rates, cheaper random numbers (`F.dropout`'s mask was the largest op of
        the training step on our CPUs). Predictions and weights are unaffected; a given
        seed trains to other weights, so it is off by default. No effect on GPU or at
        inference. Default: false.
    """
    # locals() is exactly the arguments here, at the top of the builder.
    return _build_tok2vec("spacy-encoder.TransformerTok2Vec.v1", vectors_width=0, vectors_dropout=0.0, **locals())


def build_transformer_tok2vec_v2(
    *,
    width: int,
    depth: int,
    n_heads: int,
    ff_width: int,
    vectors_width: int,
    attrs: List[str] = ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
    rows: List[int] = [5000, 1000, 2500, 2500],
    n_hashes: int = 2,
    positions: str = "rotary",
    local_window: int = 3,
    norm_first: bool = True,
    dropout: float = 0.1,
    embed_dropout: float = 0.1,
    feature_dropout: Union[float, List[float]] = 0.15,
    vectors_dropout: float = 0.1,
    output_scale: float = 3.0,
    max_length: int = 256,
    window_stride: int = 192,
    mixed_precision: bool = False,
    grad_scaler_config: Dict[str, Any] = {},
    torchscript: bool = False,
    fast_dropout: bool = False,
) -> Model[List[Doc], List[Floats2d]]:
    """`spacy-encoder.TransformerTok2Vec.v1` with static word vectors as an input, as
    spaCy's `MultiHashEmbed.v2` with `include_static_vectors = true`: each token's row of
    the pipeline's vectors (`[initialize] vectors`; zeros for words the table lacks) is
    projected to `width` and mixed with the hashed attributes. The table is not trained
    and not copied into the encoder's weights: it is saved once, with the vocab, so a
    saved pipeline needs no access to the original vectors.

    The sizes (width, depth, n_heads, ff_width and vectors_width) are required; every
    other setting has a default, the value that configs/ner_vectors.cfg writes out, so
    that `spacy init fill-config` completes a block that names only `@architectures`
    and the sizes. The defaults are part of the `.v2` contract and never change.

    vectors_width (int): Width of the pipeline's vectors: 300 for en_core_web_md/lg, 50
        for GloVe 6B 50d. 0 turns vectors off (then the model equals v1's). A pipeline
        whose vectors have another width fails at initialization, naming both. Required.
    vectors_dropout (float): In training, the chance that one token's vector is zeroed,
        so that the model also learns to read words the table lacks. Default: 0.1
        (recommended: 0 to 0.2; no effect with vectors_width = 0).
    output_scale (float): A constant factor on the output vectors. spaCy's heads start
        from small weights and learn at Adam's rate, so a larger input makes their early
        progress faster; LayerNorm's output (mean |x| about 0.8) is smaller than spaCy's
        CNN tok2vec's (about 3.5). 1.0 leaves it unscaled (as v1). Default: 3.0.
    feature_dropout (Union[float, List[float]]): As in v1. Default: 0.15 (v1's default
        is 0, for configs written before v1 had it; v2 always required it).
    Other arguments and their defaults as in `spacy-encoder.TransformerTok2Vec.v1`.
    """
    return _build_tok2vec("spacy-encoder.TransformerTok2Vec.v2", **locals())


def build_transformer_tok2vec_v3(
    *,
    width: int,
    depth: int,
    n_heads: int,
    ff_width: int,
    vectors_width: int,
    attrs: List[str] = ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
    rows: List[int] = [5000, 1000, 2500, 2500],
    n_hashes: int = 2,
    positions: str = "rotary",
    local_window: int = 3,
    norm_first: bool = True,
    dropout: float = 0.1,
    embed_dropout: float = 0.1,
    feature_dropout: Union[float, List[float]] = 0.15,
    vectors_dropout: float = 0.1,
    mix_pieces: int = 1,
    rare_word_dropout: float = 0.0,
    output_scale: float = 3.0,
    max_length: int = 256,
    window_stride: int = 192,
    mixed_precision: bool = False,
    grad_scaler_config: Dict[str, Any] = {},
    torchscript: bool = False,
    fast_dropout: bool = False,
) -> Model[List[Doc], List[Floats2d]]:
    """`spacy-encoder.TransformerTok2Vec.v2` with two settings for words the training
    data never showed (docs/benchmarks.md, "Unseen names"). With their defaults (1 and
    0) it computes what v2 computes.

    mix_pieces (int): How the hashed features and the static vector are mixed into one
        vector: 1, one linear layer (as v2); 2 or more, a maxout with that many pieces
        (spaCy's `MultiHashEmbed` uses 3). Needs vectors_width > 0 when above 1.
        Default: 1.
    rare_word_dropout (float): In training, the chance that the NORM of a word seen once
        in the training data is replaced by one unknown-word id; at inference, every
        NORM the training data never had is (`spacy_encoder.rare_words`). Needs "NORM"
        in `attrs` and the `[initialize.before_init]` callback
        `spacy-encoder.count_training_words.v1` (path = ${paths.train}), which counts
        the training words; the counts are saved with the pipeline. 0 turns it off.
        Default: 0.
    Other arguments and their defaults as in `spacy-encoder.TransformerTok2Vec.v2`.
    """
    with config_errors("spacy-encoder.TransformerTok2Vec.v3"):
        check_rare_word_dropout(rare_word_dropout, attrs)
    return _build_tok2vec("spacy-encoder.TransformerTok2Vec.v3", **locals())


def build_transformer_tok2vec_v4(
    *,
    width: int,
    depth: int,
    n_heads: int,
    ff_width: int,
    vectors_width: int,
    attrs: List[str] = ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
    rows: List[int] = [5000, 1000, 2500, 2500],
    n_hashes: int = 2,
    chars: int = 0,
    char_width: int = 64,
    positions: str = "rotary",
    attention_scale: str = "sqrt",
    local_window: int = 3,
    norm_first: bool = True,
    dropout: float = 0.1,
    embed_dropout: float = 0.1,
    feature_dropout: Union[float, List[float]] = 0.15,
    vectors_dropout: float = 0.1,
    mix_pieces: int = 1,
    rare_word_dropout: float = 0.0,
    output_scale: float = 3.0,
    max_length: int = 256,
    window_stride: int = 192,
    mixed_precision: bool = False,
    grad_scaler_config: Dict[str, Any] = {},
    torchscript: bool = False,
    fast_dropout: bool = False,
) -> Model[List[Doc], List[Floats2d]]:
    """`spacy-encoder.TransformerTok2Vec.v3` with two settings made for NER: a character
    encoder beside the hashed features (each token's first and last UTF-8 bytes through a
    small CNN, max-pooled to one vector and mixed in with the other features,
    `spacy_encoder.pytorch.characters`), and the scale of the attention logits. With
    their defaults (0 and "sqrt") it computes what v3 computes.

    chars (int): How many bytes of each token the character encoder reads: its first
        chars / 2 and last chars / 2 bytes (spaCy's `Doc.to_utf8_array`); a shorter word
        is read whole. Even, up to 64; 0 turns the character encoder off. Recommended: 16.
        Default: 0.
    char_width (int): Width of each token's character vector (the bytes are embedded at
        half of it). Recommended: 32 to 64. Default: 64.
    attention_scale (str): The factor on the attention logits: "sqrt", 1/sqrt(head
        width), as v1-v3; "learned", one factor per head, learned, starting there (a
        pretrained start computes what it did); "none", 1 (un-scaled, as TENER).
        Default: "sqrt".
    Other arguments and their defaults as in `spacy-encoder.TransformerTok2Vec.v3`.
    """
    with config_errors("spacy-encoder.TransformerTok2Vec.v4"):
        check_rare_word_dropout(rare_word_dropout, attrs)
    return _build_tok2vec("spacy-encoder.TransformerTok2Vec.v4", **locals())


def _build_tok2vec(
    name: str,
    *,
    attrs: List[str],
    rows: List[int],
    width: int,
    max_length: int,
    window_stride: int,
    n_hashes: int,
    embed_dropout: float,
    feature_dropout: Union[float, List[float]],
    vectors_width: int,
    vectors_dropout: float,
    mixed_precision: bool,
    grad_scaler_config: Dict[str, Any],
    torchscript: bool,
    mix_pieces: int = 1,
    rare_word_dropout: float = 0.0,
    chars: int = 0,
    char_width: int = 64,
    **encoder_settings: Any,
) -> Model[List[Doc], List[Floats2d]]:
    """The tok2vec of the `TransformerTok2Vec` builders, from their arguments."""
    with config_errors(name):
        embed_config = EmbedConfig(
            attrs=list(attrs),
            rows=list(rows),
            width=width,
            n_hashes=n_hashes,
            dropout=embed_dropout,
            feature_dropout=feature_dropout,
            vectors_width=vectors_width,
            vectors_dropout=vectors_dropout,
            mix_pieces=mix_pieces,
            chars=chars,
            char_width=char_width,
        )
        encoder_config = EncoderConfig(
            width=width, max_length=max_length, window_stride=window_stride, **encoder_settings
        )
        check_attrs(attrs)
    if vectors_width:
        make_module = functools.partial(VectorsTok2VecEncoder, embed_config, encoder_config)
    else:
        make_module = functools.partial(Tok2VecEncoder, embed_config, encoder_config)
    make_module = _with_dropout(make_module, encoder_config.fast_dropout)
    torch_layer = _wrap(make_module(), width, mixed_precision, grad_scaler_config, torchscript, make_module)
    return transformer_tok2vec(
        torch_layer,
        attrs=list(attrs),
        width=width,
        max_length=max_length,
        window_stride=window_stride,
        vectors_width=vectors_width,
        architecture=name,
        rare_word_dropout=rare_word_dropout,
        chars=chars,
    )


def build_transformer_encoder_v1(
    *,
    width: int,
    depth: int,
    n_heads: int,
    ff_width: int,
    positions: str = "rotary",
    local_window: int = 3,
    norm_first: bool = True,
    dropout: float = 0.1,
    max_length: int = 256,
    window_stride: int = 192,
    mixed_precision: bool = False,
    grad_scaler_config: Dict[str, Any] = {},
    torchscript: bool = False,
    fast_dropout: bool = False,
) -> Model[List[Floats2d], List[Floats2d]]:
    """The encoder stack alone, for the `encode` slot of `spacy.Tok2Vec.v2` after any
    spaCy embed layer (e.g. `spacy.MultiHashEmbed.v2` with the same width).

    Arguments and their defaults as in `spacy-encoder.TransformerTok2Vec.v1`; `width`
    must equal the embed layer's width. The sizes (width, depth, n_heads, ff_width)
    are required; the defaults are those of configs/ner.cfg's encoder: positions
    "rotary", local_window 3, norm_first true, dropout 0.1, max_length 256,
    window_stride 192, mixed_precision false, grad_scaler_config {}, torchscript false,
    fast_dropout false.
    """
    return _build_encoder("spacy-encoder.TransformerEncoder.v1", **locals())


def build_transformer_encoder_v2(
    *,
    width: int,
    depth: int,
    n_heads: int,
    ff_width: int,
    positions: str = "rotary",
    local_window: int = 3,
    norm_first: bool = True,
    dropout: float = 0.1,
    output_scale: float = 3.0,
    max_length: int = 256,
    window_stride: int = 192,
    mixed_precision: bool = False,
    grad_scaler_config: Dict[str, Any] = {},
    torchscript: bool = False,
    fast_dropout: bool = False,
) -> Model[List[Floats2d], List[Floats2d]]:
    """`spacy-encoder.TransformerEncoder.v1` with a constant factor on its output, as
    `spacy-encoder.TransformerTok2Vec.v2` has, for the `encode` slot of `spacy.Tok2Vec.v2`.

    output_scale (float): A constant factor on the output vectors, so that spaCy's heads
        learn from them as fast as from spaCy's CNN encoders (see
        `spacy-encoder.TransformerTok2Vec.v2`). 1.0 leaves the output unscaled (as v1).
        Default: 3.0.
    Other arguments and their defaults as in `spacy-encoder.TransformerEncoder.v1`. Its
    TorchScript form loads as `spacy-encoder.ScriptedEncoder.v1`: the graph keeps the
    scale as a constant.
    """
    return _build_encoder("spacy-encoder.TransformerEncoder.v2", **locals())


def _build_encoder(
    name: str,
    *,
    width: int,
    max_length: int,
    window_stride: int,
    mixed_precision: bool,
    grad_scaler_config: Dict[str, Any],
    torchscript: bool,
    **encoder_settings: Any,
) -> Model[List[Floats2d], List[Floats2d]]:
    """The encoder of the `TransformerEncoder` builders, from their arguments."""
    with config_errors(name):
        config = EncoderConfig(width=width, max_length=max_length, window_stride=window_stride, **encoder_settings)
    make_module = _with_dropout(functools.partial(TransformerEncoder, config), config.fast_dropout)
    torch_layer = _wrap(make_module(), width, mixed_precision, grad_scaler_config, torchscript, make_module)
    return transformer_encoder(torch_layer, width=width, max_length=max_length, window_stride=window_stride)


def build_scripted_tok2vec_v1(
    *,
    width: int,
    attrs: List[str],
    max_length: int,
    window_stride: int,
    mixed_precision: bool = False,
    grad_scaler_config: Dict[str, Any] = {},
) -> Model[List[Doc], List[Floats2d]]:
    """A TorchScript tok2vec loaded from a saved pipeline: the graph and weights come
    from the pipeline's files (written by `spacy-encoder deploy script`), so no Python class
    is needed to rebuild it. It cannot be initialized from scratch; train
    `spacy-encoder.TransformerTok2Vec.v1` instead. Arguments as there; they must
    match the saved module, so they have no defaults, except the two run-time
    settings that do not shape it: mixed_precision (default: false) and
    grad_scaler_config (default: {}).
    """
    with config_errors("spacy-encoder.ScriptedTok2Vec.v1"):
        check_attrs(attrs)
        check_windows(max_length, window_stride)
    torch_layer = _wrap(None, width, mixed_precision, grad_scaler_config, torchscript=True)
    return transformer_tok2vec(
        torch_layer, attrs=list(attrs), width=width, max_length=max_length, window_stride=window_stride
    )


def build_scripted_tok2vec_v2(
    *,
    width: int,
    attrs: List[str],
    vectors_width: int,
    max_length: int,
    window_stride: int,
    mixed_precision: bool = False,
    grad_scaler_config: Dict[str, Any] = {},
) -> Model[List[Doc], List[Floats2d]]:
    """The TorchScript counterpart of `spacy-encoder.TransformerTok2Vec.v2`, loaded from
    a saved pipeline (see `spacy-encoder.ScriptedTok2Vec.v1`, also for the defaults).
    `vectors_width` must match the saved module and the pipeline's vectors."""
    name = "spacy-encoder.ScriptedTok2Vec.v2"
    with config_errors(name):
        check_attrs(attrs)
        check_windows(max_length, window_stride)
        EmbedConfig(attrs=list(attrs), rows=[1] * len(attrs), vectors_width=vectors_width)
    torch_layer = _wrap(None, width, mixed_precision, grad_scaler_config, torchscript=True)
    return transformer_tok2vec(
        torch_layer,
        attrs=list(attrs),
        width=width,
        max_length=max_length,
        window_stride=window_stride,
        vectors_width=vectors_width,
        architecture=name,
    )


def build_scripted_encoder_v1(
    *,
    width: int,
    max_length: int,
    window_stride: int,
    mixed_precision: bool = False,
    grad_scaler_config: Dict[str, Any] = {},
) -> Model[List[Floats2d], List[Floats2d]]:
    """The TorchScript counterpart of `spacy-encoder.TransformerEncoder.v1`, loaded
    from a saved pipeline (see `spacy-encoder.ScriptedTok2Vec.v1`, also for the
    defaults)."""
    with config_errors("spacy-encoder.ScriptedEncoder.v1"):
        check_windows(max_length, window_stride)
    torch_layer = _wrap(None, width, mixed_precision, grad_scaler_config, torchscript=True)
    return transformer_encoder(torch_layer, width=width, max_length=max_length, window_stride=window_stride)


def build_textcat_reduce_v1(
    tok2vec: Model[List[Doc], List[Floats2d]],
    exclusive_classes: bool,
    use_reduce_first: bool,
    use_reduce_last: bool,
    use_reduce_max: bool,
    use_reduce_mean: bool,
    nO: Optional[int] = None,
) -> Model[List[Doc], Floats2d]:
    """spaCy's `spacy.TextCatReduce.v1`, with the same arguments and weights, except that
    max, first and last pooling also work on empty docs: an empty doc is pooled as one
    zero vector (spaCy's reductions need at least one token, and `""` must classify).

    tok2vec (Model): The tok2vec to pool over, usually a listener.
    exclusive_classes (bool): Mutually exclusive classes (softmax) or not (sigmoid per label).
    use_reduce_first / use_reduce_last / use_reduce_max / use_reduce_mean (bool): The
        poolings, concatenated. Recommended with the Transformer: max and mean.
    nO (Optional[int]): Number of labels, set at initialization.
    """
    from spacy.ml.models.textcat import build_reduce_text_classifier
    from thinc.api import chain

    padded = chain(tok2vec, pad_empty(tok2vec.maybe_get_dim("nO")))
    model = build_reduce_text_classifier(
        padded,
        exclusive_classes=exclusive_classes,
        use_reduce_first=use_reduce_first,
        use_reduce_last=use_reduce_last,
        use_reduce_max=use_reduce_max,
        use_reduce_mean=use_reduce_mean,
        nO=nO,
    )
    return model


def _with_dropout(make_module: Callable[[], torch.nn.Module], fast_dropout: bool) -> Callable[[], torch.nn.Module]:
    """`make_module`, with every `nn.Dropout` swapped for `FastDropout` if asked
    (`EncoderConfig.fast_dropout`, validated there)."""
    if not fast_dropout:
        return make_module
    return lambda: use_fast_dropout(make_module())


def _wrap(
    module: Optional[torch.nn.Module],
    width: int,
    mixed_precision: bool,
    grad_scaler_config: Dict[str, Any],
    torchscript: bool,
    make_module: Optional[Callable[[], torch.nn.Module]] = None,
) -> Model:
    """`module` (built by `make_module`, which `initialize` calls to draw new weights;
    None for a `Scripted*` placeholder) in our PyTorch wrapper."""
    on_gpu = isinstance(get_current_ops(), CupyOps)
    if mixed_precision and not on_gpu:
        logger.warning(
            "spacy-encoder: mixed_precision = true needs a GPU (spacy train --gpu-id 0); "
            "training on CPU in float32 instead."
        )
        mixed_precision = False
    grad_scaler: Optional[PyTorchGradScaler] = None
    if mixed_precision:
        grad_scaler = PyTorchGradScaler(enabled=True, **grad_scaler_config)
    if torchscript:
        # module None: a placeholder that from_bytes fills with the saved graph.
        with quiet_jit():
            scripted = torch.jit.script(module) if module is not None else None
        wrapper = torch_layer(
            scripted,
            scripted=True,
            mixed_precision=mixed_precision,
            grad_scaler=grad_scaler,
            make_module=make_module,
            fresh=True,
        )
    else:
        wrapper = torch_layer(
            module,
            scripted=False,
            mixed_precision=mixed_precision,
            grad_scaler=grad_scaler,
            make_module=make_module,
            fresh=True,
        )
    wrapper.set_dim("nO", width)
    return wrapper
