"""`spacy-encoder deploy serve`: a pipeline behind HTTP (the reference service of
`spacy_encoder.serve`), one uvicorn process. Needs the `serve` extra."""
from __future__ import annotations

from typing import Annotated

import typer
from wasabi import msg

from . import group, load_pipeline


@group("deploy").command("serve")
def serve_command(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="Pipeline directory or installed package name (anything spacy.load takes).")],
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8000,
    max_batch: Annotated[int, typer.Option("--max-batch", min=1, help="Texts per nlp.pipe call at most.")] = 64,
    batch_window_ms: Annotated[float, typer.Option("--batch-window-ms", min=0.0, help="How long a request waits for others to join its nlp.pipe call (ms); 0 turns micro-batching off.")] = 5.0,
    max_body_bytes: Annotated[int, typer.Option("--max-body-bytes", min=1, help="Larger request bodies are refused (413).")] = 1_000_000,
    max_texts: Annotated[int, typer.Option("--max-texts", min=1, help="More texts in one request are refused (422).")] = 256,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request (uvicorn's access log).")] = False,
) -> None:
    """Serve MODEL over HTTP, with micro-batching. POST /annotate takes {"text": ...} or {"texts": [...]} and answers each text's entities and cats; GET /health describes the pipeline. Concurrent requests share nlp.pipe calls, run on one worker thread."""
    from ..serve import MissingExtraError, Settings, require_extra

    try:
        require_extra()
        settings = Settings(max_batch=max_batch, batch_window_ms=batch_window_ms, max_body_bytes=max_body_bytes, max_texts=max_texts)
    except (MissingExtraError, ValueError) as err:
        msg.fail(str(err), exits=1)
    from ..serve.app import run_service

    nlp = load_pipeline(model)
    batching = f"micro-batching up to {max_batch} texts, {batch_window_ms:g} ms window" if batch_window_ms else "micro-batching off"
    msg.good(f"Serving {model} ({', '.join(nlp.pipe_names) or 'no components'}) on http://{host}:{port}: POST /annotate, GET /health; {batching}")
    run_service(nlp, host=host, port=port, settings=settings, access_log=access_log)
