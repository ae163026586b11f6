"""The encoder's hyper-parameters in one dataclass, validated in one place.

Validation lives here (not in the builders) so that the torch modules, the Thinc
builders and the export command all reject the same bad values with the same message.
Field names match the builder arguments so the message names the config field.
"""
from dataclasses import dataclass, field
from typing import List, Sequence, Tuple, Union

from ..windowing import EncoderConfigError, check_windows  # noqa: F401 (part of this module's API)
from .attention import ATTENTION_SCALES

POSITION_KINDS: Tuple[str, ...] = ("rotary", "sinusoidal", "learned", "none")


@dataclass
class EncoderConfig:
    """Hyper-parameters of the encoder stack (everything after the embeddings).

    width: hidden size of every layer.
    depth: number of stacked encoder layers.
    n_heads: attention heads; must divide `width`.
    ff_width: hidden size of the feed-forward sub-layer.
    positions: "rotary", "sinusoidal", "learned" or "none".
    local_window: kernel size of the residual convolutions run before the first layer
        and first in every layer (0 turns them off). Odd, so that each is centred on
        its token.
    norm_first: pre-norm (True) or post-norm (False) residual blocks.
    dropout: dropout inside the torch modules (attention weights, residual branches).
    max_length: the longest sequence the encoder sees at once; longer docs are split
        into windows of this length.
    window_stride: distance between the starts of consecutive windows of a long doc.
    output_scale: a constant factor on the output vectors. spaCy's heads start from
        small weights and learn at Adam's rate, so their early progress grows with the
        scale of their input; LayerNorm's output (mean |x| about 0.8) is smaller than
        spaCy's CNN tok2vec's (about 3.5). 1.0 leaves the output as it is.
    fast_dropout: in training on the CPU, every dropout of the module (the embeddings'
        included) draws its mask as `FastDropout` does instead of `nn.Dropout`
        (`use_fast_dropout`, applied by the builders).
    attention_scale: the factor on the attention logits: "sqrt" (1/sqrt(head width)),
        "learned" (per head, starting there) or "none" (1); see `SelfAttention`.
    """

    width: int = 128
    depth: int = 4
    n_heads: int = 4
    ff_width: int = 512
    positions: str = "rotary"
    local_window: int = 3
    norm_first: bool = True
    dropout: float = 0.1
    max_length: int = 256
    window_stride: int = 192
    output_scale: float = 1.0
    fast_dropout: bool = False
    attention_scale: str = "sqrt"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def fail(name: str, value: object, why: str) -> None:
            raise EncoderConfigError(name, value, why)

        for name in ("width", "depth", "n_heads", "ff_width", "max_length", "window_stride", "local_window"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                fail(name, value, "Expected an integer.")
        if self.width < 1:
            fail("width", self.width, "Expected a positive integer.")
        if self.depth < 1:
            fail("depth", self.depth, "The encoder needs at least one layer (depth >= 1).")
        if self.n_heads < 1:
            fail("n_heads", self.n_heads, "Expected a positive integer.")
        if self.width % self.n_heads != 0:
            fail(
                "n_heads",
                self.n_heads,
                f"'width' ({self.width}) must be divisible by 'n_heads' ({self.n_heads}).",
            )
        if self.positions == "rotary" and (self.width // self.n_heads) % 2 != 0:
            fail(
                "n_heads",
                self.n_heads,
                f"Rotary positions need an even head width; width/n_heads = {self.width // self.n_heads}.",
            )
        if self.ff_width < 1:
            fail("ff_width", self.ff_width, "Expected a positive integer.")
        if self.attention_scale not in ATTENTION_SCALES:
            fail("attention_scale", self.attention_scale, f"Expected one of {', '.join(ATTENTION_SCALES)}.")
        if self.positions not in POSITION_KINDS:
            fail("positions", self.positions, f"Expected one of {', '.join(POSITION_KINDS)}.")
        if self.local_window < 0 or (self.local_window > 0 and self.local_window % 2 == 0):
            fail("local_window", self.local_window, "Expected 0 (off) or an odd kernel size such as 3.")
        for name in ("norm_first", "fast_dropout"):
            if not isinstance(getattr(self, name), bool):
                fail(name, getattr(self, name), "Expected true or false.")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            fail("dropout", self.dropout, "Expected a float in [0, 1).")
        if (
            not isinstance(self.output_scale, (int, float))
            or isinstance(self.output_scale, bool)
            or not 0.0 < self.output_scale <= 100.0
        ):
            fail("output_scale", self.output_scale, "Expected a positive float (1.0 = unscaled).")
        check_windows(self.max_length, self.window_stride)


def feature_dropout_rates(value: Union[float, Sequence[float]], n_attrs: int) -> List[float]:
    """One word-dropout rate per attribute, from one rate for all or a list of them.

    Shared by `EmbedConfig` and `HashEmbed`, so both reject the same values alike.
    """
    rates = list(value) if isinstance(value, (list, tuple)) else [value] * n_attrs
    if len(rates) != n_attrs:
        raise EncoderConfigError("feature_dropout", value, f"Expected one float, or one per attribute ({n_attrs} attrs).")
    for rate in rates:
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0.0 <= rate < 1.0:
            raise EncoderConfigError("feature_dropout", value, "Expected a float in [0, 1), or a list of them.")
    return [float(rate) for rate in rates]


@dataclass
class EmbedConfig:
    """Hyper-parameters of the hashed token-feature embeddings.

    attrs: spaCy token attributes whose ids are hashed, e.g. NORM, PREFIX, SUFFIX, SHAPE.
    rows: hash-table rows for each attribute (same order as `attrs`).
    width: output width (the encoder width).
    n_hashes: how many hashed rows are summed per id; collisions of one hash are
        rarely collisions of all.
    dropout: dropout on the combined embedding.
    feature_dropout: in training, the chance that one attribute of one token is
        dropped (its vector zeroed, as for an unknown id). Dropping NORM makes the
        model read a word through its prefix, suffix, shape and context, as it
        must for names it never saw in training. One rate for every attribute, or a
        list with one rate per attribute (same order as `attrs`).
    vectors_width: width of the static vectors mixed in beside the hashed features
        (the pipeline's `vocab.vectors`, e.g. 300 for en_core_web_md); 0 = none.
    vectors_dropout: in training, the chance that one token's static vector is zeroed
        (as for a word the table does not have).
    mix_pieces: how the features are mixed into one vector: 1, one linear layer; 2 or
        more, a maxout with that many pieces (spaCy's `MultiHashEmbed` uses 3). Only
        with static vectors.
    chars: 0, or how many UTF-8 bytes of each token (its first and last halves) a
        character CNN reads (`pytorch.characters.CharEncoder`); even, at most 64.
    char_width: the width of each token's character vector.
    """

    attrs: List[str] = field(default_factory=lambda: ["NORM", "PREFIX", "SUFFIX", "SHAPE"])
    rows: List[int] = field(default_factory=lambda: [5000, 1000, 2500, 2500])
    width: int = 128
    n_hashes: int = 2
    dropout: float = 0.1
    feature_dropout: Union[float, List[float]] = 0.0
    vectors_width: int = 0
    vectors_dropout: float = 0.0
    mix_pieces: int = 1
    chars: int = 0
    char_width: int = 64

    def __post_init__(self) -> None:
        def fail(name: str, value: object, why: str) -> None:
            raise EncoderConfigError(name, value, why)

        if not self.attrs:
            fail("attrs", self.attrs, "Expected at least one token attribute.")
        if len(self.rows) != len(self.attrs):
            fail("rows", self.rows, f"Expected one row count per attribute ({len(self.attrs)} attrs).")
        for r in self.rows:
            if not isinstance(r, int) or isinstance(r, bool) or r < 1:
                fail("rows", self.rows, "Every row count must be a positive integer.")
        if not 1 <= self.n_hashes <= 4:
            fail("n_hashes", self.n_hashes, "Expected 1 to 4.")
        if not 0.0 <= self.dropout < 1.0:
            fail("embed_dropout", self.dropout, "Expected a float in [0, 1).")
        feature_dropout_rates(self.feature_dropout, len(self.attrs))
        if not isinstance(self.vectors_width, int) or isinstance(self.vectors_width, bool) or self.vectors_width < 0:
            fail("vectors_width", self.vectors_width, "Expected 0 (no static vectors) or the vectors' width, e.g. 300.")
        if (
            not isinstance(self.vectors_dropout, (int, float))
            or isinstance(self.vectors_dropout, bool)
            or not 0.0 <= self.vectors_dropout < 1.0
        ):
            fail("vectors_dropout", self.vectors_dropout, "Expected a float in [0, 1).")
        if not isinstance(self.mix_pieces, int) or isinstance(self.mix_pieces, bool) or not 1 <= self.mix_pieces <= 8:
            fail("mix_pieces", self.mix_pieces, "Expected an integer from 1 (a linear mix) to 8.")
        if self.mix_pieces > 1 and not self.vectors_width:
            fail("mix_pieces", self.mix_pieces, "A maxout mix needs static vectors (vectors_width > 0); use 1.")
        if not isinstance(self.chars, int) or isinstance(self.chars, bool) or not 0 <= self.chars <= 64 or self.chars % 2:
            fail("chars", self.chars, "Expected 0 (no character encoder) or an even number of bytes up to 64, e.g. 16.")
        if not isinstance(self.char_width, int) or isinstance(self.char_width, bool) or not 2 <= self.char_width <= 1024:
            fail("char_width", self.char_width, "Expected an integer from 2 to 1024, e.g. 64.")
