"""Training loggers (registered through the `spacy_loggers` entry point group)."""
import json
import time
from pathlib import Path
from typing import IO, Any, Callable, Dict, Optional, Tuple

from spacy.language import Language

LogStep = Callable[[Optional[Dict[str, Any]]], None]
Finalize = Callable[[], None]
LoggerSetup = Callable[[Language, IO, IO], Tuple[LogStep, Finalize]]


def create_throughput_logger_v1(path: str, logger: Optional[LoggerSetup] = None) -> LoggerSetup:
    """Write, at every evaluation, one JSON line with the step, the words seen and the
    seconds since training started, then hand the step to `logger` (for example
    `spacy.ConsoleLogger.v3`), which prints as usual.

    spaCy's own loggers print scores but not the word count, so words per second of a
    run cannot be read from their output; the accuracy benchmark needs it for every
    system it trains, spaCy's CNN configs included. Seconds include the evaluations.

    Seconds are measured here (spaCy's own count is rounded down to whole seconds).

    path (str): The JSON-lines file to write (its folder is created; an old file is replaced).
    logger (Optional[Callable]): The logger to pass every step on to.
    """

    def setup(nlp: Language, stdout: IO, stderr: IO) -> Tuple[LogStep, Finalize]:
        inner_step, inner_finalize = logger(nlp, stdout, stderr) if logger is not None else (None, None)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle = target.open("w", encoding="utf8")
        start = time.perf_counter()

        def log_step(info: Optional[Dict[str, Any]]) -> None:
            if inner_step is not None:
                inner_step(info)
            if info is None:
                return
            record = {
                "epoch": info["epoch"],
                "step": info["step"],
                "words": info["words"],
                "seconds": round(time.perf_counter() - start, 3),
                "score": info["score"],
                "scores": {k: v for k, v in info["other_scores"].items() if isinstance(v, (int, float))},
            }
            handle.write(json.dumps(record) + "\n")
            handle.flush()

        def finalize() -> None:
            if inner_finalize is not None:
                inner_finalize()
            handle.close()

        return log_step, finalize

    return setup
