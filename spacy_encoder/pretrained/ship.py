"""Put a `spacy pretrain` output into the package as a shipped encoder
(`spacy-encoder pretrain ship`).

The weights are copied to `NAME.bin` and their meta written to `NAME.json`: the
architecture settings the weights fit (the shape-deciding ones of the config's tok2vec
block), the objective, the text and how many words were seen, the pretraining loss and
speed (from spaCy's log.jsonl and the files' times), license and credit, and sha256.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any, Dict, Optional

from . import PretrainedError, meta as shipped_meta

__all__ = ["SHAPE_SETTINGS", "RUN_KEYS", "WIKIPEDIA_TEXT", "pretraining_meta", "continued", "ship"]

# The settings that decide the weights' shapes (dropouts, windows, output_scale and
# torchscript may differ between pretraining and training).
SHAPE_SETTINGS = ("width", "depth", "n_heads", "ff_width", "attrs", "rows", "n_hashes", "positions", "local_window", "norm_first", "vectors_width")
# What one run of a continued pretraining keeps in its meta's `history`.
RUN_KEYS = ("name", "text", "texts", "words_in_text", "words_seen", "epochs", "loss", "pretraining_seconds", "words_per_second", "machine", "command")
WIKIPEDIA_TEXT = (
    "English Wikipedia, WikiExtractor output of a 2015 dump (../shared/corpora/wikipedia; jason-feng/wikiVisual@1c0fac9, "
    "text/AA and text/AB), converted with `spacy-encoder convert wiki-text`"
)
VECTORS_TARGETS = (
    "en_core_web_md 3.8.0 vectors (300-d, 20,000 rows; ../shared/vectors/en_core_web_md), used as targets only: "
    "not needed to use the encoder"
)
LICENSE = "The weights: MIT, as spacy-encoder. The text they were trained on: CC BY-SA 3.0 (and GFDL); the model is not a copy of the text."
CREDIT = "Pretrained on text written by Wikipedia's contributors (https://en.wikipedia.org), CC BY-SA 3.0."


def pretraining_meta(
    weights: Path, config_path: Path, raw_text: Path, *, name: str, command: str, machine: str, text: str = WIKIPEDIA_TEXT,
    log: Optional[Path] = None, continues: Optional[str] = None,
) -> Dict[str, Any]:
    """The meta of the weights at `weights`, written by `spacy pretrain` with the config
    at `config_path` on the JSONL at `raw_text`. `log`: spaCy's log.jsonl of the run
    (default: beside the weights); for a `.temp.bin`, a copy taken with it.
    `continues`: the shipped encoder this run resumed from (`--resume-path`)."""
    import spacy
    import srsly
    import torch
    from spacy.util import load_config

    config = load_config(config_path)
    block = config["components"]["tok2vec"]["model"]
    last = list(srsly.read_jsonl(log or weights.parent / "log.jsonl"))[-1]
    seconds = weights.stat().st_mtime - (weights.parent / "config.cfg").stat().st_mtime
    rows = list(srsly.read_jsonl(raw_text))
    whitespace_words = sum(len(row["text"].split()) for row in rows)
    # spaCy counts tokens; the text's size is in whitespace words: the ratio of a sample.
    tokenizer = spacy.blank("en").tokenizer
    sample = [row["text"] for row in rows[:: max(1, len(rows) // 2000)]]
    tokens_per_word = sum(len(tokenizer(t)) for t in sample) / sum(len(t.split()) for t in sample)
    partial = weights.name.endswith(".temp.bin")
    # A .temp.bin checkpoint is part of the way through its epoch: count the part seen.
    fraction = round(last["nr_word"] / tokens_per_word / whitespace_words, 3) if partial else 1.0
    meta = {
        "name": name,
        "architecture": {"@architectures": block["@architectures"], **{key: block.get(key, 0) for key in SHAPE_SETTINGS}},
        "objective": dict(config["pretraining"]["objective"]),
        "vectors_targets": VECTORS_TARGETS,
        "text": text,
        "texts": len(rows),
        "words_in_text": whitespace_words,
        "words_seen": int(last["nr_word"]),
        "words_seen_note": (
            f"spaCy tokens; about {round(last['nr_word'] / tokens_per_word):,} whitespace words "
            f"({tokens_per_word:.3f} tokens per word)"
            + (f", the start of the text (stopped at a checkpoint of epoch {last['epoch']})" if partial else "")
        ),
        # A continued run resumes as epoch K of its own slice of text: it counts only
        # the part of that slice it saw.
        "epochs": fraction if continues else int(last["epoch"]) + fraction,
        "loss": {"total": round(last["loss"], 2), "last_epoch": round(last["epoch_loss"], 2), "batches_of_words": config["pretraining"]["batcher"]["size"]},
        "pretraining_seconds": round(seconds),
        "words_per_second": round(last["nr_word"] / seconds) if seconds > 0 else None,
        "machine": machine,
        "torch": torch.__version__,
        "command": command,
        "license": LICENSE,
        "credit": CREDIT,
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
    }
    return continued(meta, continues) if continues else meta


def continued(meta: Dict[str, Any], name: str) -> Dict[str, Any]:
    """The meta of a run that resumed from the shipped encoder NAME: words, texts and
    seconds are the sums of both runs, and `history` keeps each run's own figures."""
    before = shipped_meta(name)
    history = before.get("history") or [{key: before[key] for key in RUN_KEYS}]
    this = {key: meta[key] for key in RUN_KEYS}
    if before["architecture"] != meta["architecture"] or before["objective"] != meta["objective"]:
        raise PretrainedError(f"--continues {name}: its architecture or objective is not the config's; a continued run keeps both")
    out = dict(meta)
    out.update(
        text=f"{before['text']}; then {meta['text']}" if before["text"] != meta["text"] else meta["text"],
        texts=before["texts"] + meta["texts"],
        words_in_text=before["words_in_text"] + meta["words_in_text"],
        words_seen=before["words_seen"] + meta["words_seen"],
        words_seen_note=f"spaCy tokens, summed over {len(history) + 1} runs ({name} and this one; see history); this run: {meta['words_seen_note']}",
        epochs=None,  # the runs saw different texts: see history
        pretraining_seconds=before["pretraining_seconds"] + meta["pretraining_seconds"],
        continues=name,
        history=[*history, this],
    )
    return out


def ship(weights: Path, meta: Dict[str, Any], output_dir: Optional[Path] = None) -> Path:
    """Copy `weights` to `output_dir/NAME.bin` (default: the package's pretrained
    folder) and write `meta` beside it as NAME.json; returns the .bin's path."""
    import srsly

    from . import PRETRAINED_DIR

    out = Path(output_dir or PRETRAINED_DIR)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{meta['name']}.bin"
    shutil.copyfile(weights, target)
    srsly.write_json(out / f"{meta['name']}.json", meta)
    return target
