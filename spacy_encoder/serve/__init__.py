"""The reference service: a pipeline behind HTTP, with micro-batching.

- `MicroBatcher` (batcher.py) gathers the texts of concurrent requests into one
  `nlp.pipe` call on a single worker thread and hands each request its own answers.
- `parse_texts` (payload.py) checks a request body; `RequestError` carries the status.
- `Settings` (settings.py): the batch size, the batching window and the limits.
- app.py (needs the `serve` extra: Starlette and uvicorn) makes the Starlette app
  (`create_app`, or `app_from_env` for `uvicorn --factory` and gunicorn) and runs it
  (`run_service`, the `spacy-encoder deploy serve` command).

Nothing here imports Starlette, uvicorn, spaCy or torch; app.py imports Starlette.
"""
from .batcher import Answer, BatchStats, MicroBatcher, PipelineError, ServiceStopping, doc_answer
from .payload import RequestError, parse_texts
from .settings import PIPELINE_ENV, Settings

SERVE_HINT = 'pip install "spacy-encoder[serve]"'


class MissingExtraError(ImportError):
    """Starlette or uvicorn is not installed."""


def require_extra() -> None:
    """Starlette and uvicorn importable, or one `MissingExtraError` with the install hint."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise MissingExtraError(f"The reference service needs Starlette and uvicorn: {SERVE_HINT} ({err})") from None


__all__ = [
    "PIPELINE_ENV",
    "SERVE_HINT",
    "Answer",
    "BatchStats",
    "MicroBatcher",
    "MissingExtraError",
    "PipelineError",
    "RequestError",
    "ServiceStopping",
    "Settings",
    "doc_answer",
    "parse_texts",
    "require_extra",
]
