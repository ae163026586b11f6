"""Settings checks that a builder runs before anything is built, in one place each,
without torch (the ONNX builder uses them too): a bad value becomes a config error that
names the field, which `spacy train` and `spacy.load` print without a traceback.
"""
from contextlib import contextmanager
from typing import Iterator, List

from confection import ConfigValidationError

from .windowing import EncoderConfigError


@contextmanager
def config_errors(architecture: str) -> Iterator[None]:
    """Report a bad hyper-parameter as a config error naming the field, which
    `spacy train` prints without a traceback."""
    try:
        yield
    except EncoderConfigError as err:
        raise ConfigValidationError(
            title=f"Invalid settings for {architecture}",
            errors=[{"loc": [err.field], "msg": f"{err.why} (got {err.value!r})"}],
            show_config=False,
        ) from None


def check_attrs(attrs: List[str]) -> None:
    from spacy.attrs import IDS

    for attr in attrs:
        if attr.upper() not in IDS:
            raise EncoderConfigError("attrs", attr, "Unknown token attribute; use spaCy names such as NORM or SHAPE.")


def check_rare_word_dropout(rate: float, attrs: List[str]) -> None:
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0.0 <= rate < 1.0:
        raise EncoderConfigError("rare_word_dropout", rate, "Expected a float in [0, 1).")
    if rate > 0.0 and "NORM" not in [a.upper() for a in attrs]:
        raise EncoderConfigError("rare_word_dropout", rate, "Rare words are NORM ids: add \"NORM\" to attrs, or use 0.")
