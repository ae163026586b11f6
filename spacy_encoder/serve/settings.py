"""`Settings`: the limits and the batching of the reference service, from arguments or
from the environment (for `uvicorn --factory` and gunicorn workers)."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Mapping, Optional

PIPELINE_ENV = "SPACY_ENCODER_PIPELINE"
ENV_PREFIX = "SPACY_ENCODER_"  # SPACY_ENCODER_MAX_BATCH, ..._BATCH_WINDOW_MS, ...


@dataclass(frozen=True)
class Settings:
    """max_batch (int): Texts per `nlp.pipe` call at most.
    batch_window_ms (float): How long the oldest waiting request waits for others to
        join its batch; 0 turns micro-batching off (one request per `nlp.pipe` call).
    max_body_bytes (int): Larger request bodies are refused with 413.
    max_texts (int): More texts in one request are refused with 422.
    """

    max_batch: int = 64
    batch_window_ms: float = 5.0
    max_body_bytes: int = 1_000_000
    max_texts: int = 256

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_body_bytes", "max_texts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.batch_window_ms < 0:
            raise ValueError(f"batch_window_ms must be 0 (off) or more, not {self.batch_window_ms}")

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "Settings":
        """Each setting from `SPACY_ENCODER_<NAME>` (e.g. SPACY_ENCODER_MAX_BATCH) where
        set, else its default; a value that is not a number fails naming the variable."""
        environ = os.environ if environ is None else environ
        given = {}
        for field in fields(cls):
            variable = ENV_PREFIX + field.name.upper()
            if environ.get(variable, "").strip():
                kind = float if field.type in (float, "float") else int
                try:
                    given[field.name] = kind(environ[variable])
                except ValueError:
                    raise ValueError(f"{variable}={environ[variable]!r} is not a{'' if kind is float else 'n integer'} number") from None
        return cls(**given)
