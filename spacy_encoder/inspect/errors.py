"""The errors of `spacy_encoder.inspect`, apart from the work so that every part of it
(and the commands that catch them) can import them without torch or matplotlib."""


class InspectError(ValueError):
    """A model, text or log that cannot be inspected; the message says why."""


class MissingExtraError(ImportError):
    """matplotlib (the `viz` extra) is not installed."""
