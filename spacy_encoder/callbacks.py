"""Training callbacks (registered through the `spacy_callbacks` entry point group)."""
import signal
import sys
import threading
from typing import Any, Callable, Dict, Optional

from spacy.language import Language


def create_stop_cleanly_v1() -> Callable[[Language, Dict[str, Any]], None]:
    """A `[training] before_update` callback: SIGINT or SIGTERM during `spacy train`
    stops the run between two steps, never in the middle of saving a checkpoint.

    spaCy saves `model-last` in a `finally` block, which a plain SIGTERM skips and a
    Ctrl-C can interrupt halfway through writing `model-best`. With this callback the
    signal only sets a flag; the next step exits (status 128 + signal number) and spaCy
    saves `model-last`. `model-best` keeps its last complete save. A second signal
    stops at once.
    """
    received: Dict[str, Optional[int]] = {"signal": None}
    installed = {"done": False}

    def handler(signum: int, frame: Any) -> None:
        received["signal"] = signum
        signal.signal(signum, signal.SIG_DFL)
        name = signal.Signals(signum).name
        print(f"\nspacy-encoder: {name} received; stopping after this step and saving model-last.", file=sys.stderr)

    def before_update(nlp: Language, info: Dict[str, Any]) -> None:
        if not installed["done"] and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, handler)
            signal.signal(signal.SIGTERM, handler)
            installed["done"] = True
        if received["signal"] is not None:
            raise SystemExit(128 + received["signal"])

    return before_update
