"""The one reader of a training log (log.jsonl): the records of `spacy train`'s
evaluations, as the configs' `spacy.ConsoleLogger.v3` or the accuracy benchmark's
`spacy-encoder.ThroughputLogger.v1` writes them."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Sequence, Union

LOG_FILE_NAME = "log.jsonl"
CONSOLE_LOGGER = "spacy.ConsoleLogger.v3"
THROUGHPUT_LOGGER = "spacy-encoder.ThroughputLogger.v1"
# The keys that every record of each logger's file has (and its readers use).
RECORD_KEYS = {CONSOLE_LOGGER: ("step", "losses", "scores"), THROUGHPUT_LOGGER: ("step", "score")}


class TrainingLogError(ValueError):
    """A training log that is missing, empty, or not written by the logger asked for."""


def resolve_log(path: Union[str, Path]) -> Path:
    """The log file itself, or `log.jsonl` inside a training output directory."""
    path = Path(path)
    if path.is_dir():
        candidate = path / LOG_FILE_NAME
        if not candidate.exists():
            raise TrainingLogError(
                f"No {LOG_FILE_NAME} in {path}. Train with `--paths.log {candidate}` (the configs' "
                "[training.logger] writes it via output_file = ${paths.log}), or pass the log file."
            )
        return candidate
    if not path.exists():
        raise TrainingLogError(f"{path} does not exist: pass the log file written with --paths.log, or its directory.")
    return path


def read_training_log(
    path: Union[str, Path], logger: str = CONSOLE_LOGGER, missing_ok: bool = False
) -> List[Dict[str, Any]]:
    """The records of a `spacy.ConsoleLogger.v3` output file, one per evaluation:
    {"epoch", "step", "losses": {component: loss summed since the previous
    evaluation}, "scores": {score column: value * 100 (except "speed")},
    "score": weighted score in [0, 1]}.

    logger: the logger that wrote the file (a key of RECORD_KEYS); the accuracy
    benchmark's `spacy-encoder.ThroughputLogger.v1` writes {"epoch", "step", "words",
    "seconds" since training started, "score", "scores"} and no losses.
    missing_ok: a missing log, or one without an evaluation yet, reads as [] (a run
    that failed before its first evaluation) instead of raising TrainingLogError."""
    try:
        path = resolve_log(path)
    except TrainingLogError:
        if missing_ok:
            return []
        raise
    keys = RECORD_KEYS[logger]
    lines = path.read_text(encoding="utf8").splitlines()
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # a run still writing its last line
                break
            raise TrainingLogError(f"{path}:{i + 1} is not JSON; expected {logger} output.") from None
        if not isinstance(record, dict) or not set(keys) <= record.keys():
            raise TrainingLogError(f"{path}:{i + 1} has no {'/'.join(keys)}; expected {logger} output.")
        records.append(record)
    if not records and not missing_ok:
        raise TrainingLogError(f"{path} holds no evaluations yet (one line is written per evaluation).")
    return records


def losses_per_step(records: Sequence[Dict[str, Any]]) -> Dict[str, List[float]]:
    """Each component's mean loss per update since the previous evaluation (spaCy sums
    the losses between evaluations and then resets them)."""
    out: Dict[str, List[float]] = {}
    previous = -1
    for record in records:
        n_steps = max(record["step"] - previous, 1)
        previous = record["step"]
        for name, value in record["losses"].items():
            out.setdefault(name, []).append(float(value) / n_steps)
    return out
