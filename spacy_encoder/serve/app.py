"""The reference service as a Starlette app: one pipeline, one `MicroBatcher`.

    GET  /health     200 {"status": "ok", "name", "version", "components", "batching", "limits"}
    POST /annotate   {"text": "..."} or {"texts": ["...", ...]}
                     200 {"docs": [{"ents": [{"text", "label", "start_char", "end_char"}], "cats": {...}}, ...]}

Every error is `{"error": "<one line>"}`: 400 (not JSON), 413 (body over
`max_body_bytes`), 422 (JSON of the wrong shape), 404 and 405, 500 (the pipeline failed
on this request), 503 (the service is stopping).

`create_app(nlp)` makes the app; `app_from_env()` loads the pipeline that
SPACY_ENCODER_PIPELINE names, for `uvicorn --factory` and gunicorn's workers (each
worker loads its own); `run_service` runs one uvicorn process (`spacy-encoder deploy
serve`). Needs the `serve` extra: importing this module without it raises
`MissingExtraError` with the install hint.
"""
from __future__ import annotations

import asyncio
import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Dict, Optional

from . import require_extra
from .batcher import MicroBatcher, ServiceStopping
from .payload import RequestError, parse_texts
from .settings import PIPELINE_ENV, Settings

require_extra()

from starlette.applications import Starlette  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402
from starlette.requests import ClientDisconnect, Request  # noqa: E402
from starlette.responses import JSONResponse, Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

ROUTES_HINT = "the service answers GET /health and POST /annotate"


def create_app(nlp: Any, settings: Optional[Settings] = None) -> Starlette:
    """A Starlette app serving `nlp`. The batcher starts and stops with the app's
    lifespan; `app.state.batcher` holds it (its `stats` count the `nlp.pipe` calls)."""
    settings = settings or Settings()
    batcher = MicroBatcher(nlp, max_batch=settings.max_batch, window_ms=settings.batch_window_ms)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    async def health(request: Request) -> Response:
        return JSONResponse(health_answer(nlp, batcher, settings))

    async def annotate(request: Request) -> Response:
        try:
            texts = parse_texts(await read_body(request, settings.max_body_bytes), max_texts=settings.max_texts)
        except RequestError as err:
            return error(err.status, err.message)
        except ClientDisconnect:
            return Response(status_code=400)  # the client left while sending: nobody to answer
        docs = await until_disconnected(request, batcher.annotate(texts))
        if docs is None:
            return Response(status_code=499)  # the client left: its texts were dropped or its answer thrown away
        if isinstance(docs, ServiceStopping):
            return error(503, str(docs))
        if isinstance(docs, Exception):
            return error(500, f"the pipeline failed on this request: {docs}")
        return JSONResponse({"docs": docs})

    app = Starlette(
        routes=[Route("/health", health, methods=["GET"]), Route("/annotate", annotate, methods=["POST"])],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.settings = settings
    return app


def app_from_env() -> Starlette:
    """The app for the pipeline that SPACY_ENCODER_PIPELINE names (a folder or an
    installed package), with `Settings.from_env()`: a factory for `uvicorn --factory`
    and gunicorn, called in each worker process."""
    from ..weights import load_pipeline

    model = os.environ.get(PIPELINE_ENV, "").strip()
    if not model:
        raise RuntimeError(f"{PIPELINE_ENV} is not set: name the pipeline to serve (a folder or an installed package)")
    return create_app(load_pipeline(model), Settings.from_env())


def run_service(nlp: Any, *, host: str = "127.0.0.1", port: int = 8000, settings: Optional[Settings] = None,
                access_log: bool = False, log_level: str = "info") -> None:
    """Serve `nlp` with uvicorn in this process until SIGINT or SIGTERM."""
    import uvicorn

    uvicorn.run(create_app(nlp, settings), host=host, port=port, access_log=access_log, log_level=log_level)


def health_answer(nlp: Any, batcher: MicroBatcher, settings: Settings) -> Dict[str, Any]:
    meta = nlp.meta
    return {
        "status": "ok",
        "name": f"{meta.get('lang', nlp.lang)}_{meta.get('name', 'pipeline')}",
        "version": meta.get("version", ""),
        "components": list(nlp.pipe_names),
        "batching": {"max_batch": settings.max_batch, "batch_window_ms": settings.batch_window_ms,
                     "waiting": batcher.waiting, **batcher.stats.as_json()},
        "limits": {"max_body_bytes": settings.max_body_bytes, "max_texts": settings.max_texts},
    }


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be over `limit` bytes: from
    Content-Length before reading, else (chunked) while reading."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the body is {int(declared):,} bytes, over the limit of {limit:,} (--max-body-bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"the body is over the limit of {limit:,} bytes (--max-body-bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


async def until_disconnected(request: Request, work: Any) -> Any:
    """The result of `work` (an exception is returned, not raised), or None if the
    client disconnects first: `work` is then cancelled, so the batcher drops its texts."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnect(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, gone):
            if not pending.done():
                pending.cancel()
    if not task.done() or task.cancelled():
        return None
    return task.exception() or task.result()


async def _disconnect(request: Request) -> None:
    """Returns when the server reports the client gone (the body has been read, so the
    next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split())}, status_code=status)


async def http_error(request: Request, exc: HTTPException) -> Response:
    hint = f": {ROUTES_HINT}" if exc.status_code in (404, 405) else ""
    return error(exc.status_code, f"{exc.detail}{hint}")


async def server_error(request: Request, exc: Exception) -> Response:
    return error(500, f"internal error: {type(exc).__name__}: {exc}")
