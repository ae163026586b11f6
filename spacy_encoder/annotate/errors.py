"""The errors of `annotate corpus`: the CLI prints their message in one line."""
from __future__ import annotations


class AnnotateError(Exception):
    """Bad input, a bad option or an output in the way: the message says which."""


class MissingExtraError(AnnotateError):
    """The Ray engine without Ray installed."""
