"""Put a `spacy pretrain` output into the package as a shipped encoder.

    python tools/ship_pretrained.py training/pretrain-wiki/model0.bin \
        --config configs/ner_pretrained.cfg --raw-text corpus/wikipedia/raw_9M.jsonl \
        --name en-wiki-128 --command "python -m spacy pretrain ..." \
        --machine "2-core x86_64 CPU (no GPU), one torch thread"

Copies the weights to spacy_encoder/pretrained/NAME.bin and writes NAME.json: the
architecture settings the weights fit (the shape-deciding ones of the config's tok2vec
block), the objective, the text and how many words were seen, the pretraining loss and
speed (from spaCy's log.jsonl and the files' times), license and credit, and sha256.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

import spacy
import srsly
import torch
from spacy.util import load_config

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "spacy_encoder" / "pretrained"
# The settings that decide the weights' shapes (dropouts, windows, output_scale and
# torchscript may differ between pretraining and training).
# What one run of a continued pretraining keeps in its meta's `history`.
RUN_KEYS = ("name", "text", "texts", "words_in_text", "words_seen", "epochs", "loss", "pretraining_seconds", "words_per_second", "machine", "command")
SHAPE_SETTINGS = ("width", "depth", "n_heads", "ff_width", "attrs", "rows", "n_hashes", "positions", "local_window", "norm_first", "vectors_width")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path, help="modelN.bin written by spacy pretrain")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--raw-text", type=Path, required=True, help="the JSONL it was pretrained on")
    parser.add_argument("--name", required=True)
    parser.add_argument("--command", required=True, help="the spacy pretrain command, for the meta")
    parser.add_argument("--machine", required=True, help="where and how it ran, e.g. '2-core x86_64 CPU, one torch thread'")
    parser.add_argument("--log", type=Path, default=None, help="spaCy's log.jsonl of the run (default: beside the weights); for a .temp.bin, a copy taken with it")
    parser.add_argument("--continues", default=None, metavar="NAME", help="The shipped encoder this run resumed from (--resume-path): its words, text and time are added to this run's")
    parser.add_argument("--text", default="English Wikipedia, WikiExtractor output of a 2015 dump (../shared/corpora/wikipedia; jason-feng/wikiVisual@1c0fac9, text/AA and text/AB), converted with `spacy-encoder wiki-text`")
    args = parser.parse_args()

    config = load_config(args.config)
    block = config["components"]["tok2vec"]["model"]
    log = list(srsly.read_jsonl(args.log or args.weights.parent / "log.jsonl"))
    last = log[-1]
    started = (args.weights.parent / "config.cfg").stat().st_mtime
    seconds = args.weights.stat().st_mtime - started
    rows = list(srsly.read_jsonl(args.raw_text))
    whitespace_words = sum(len(row["text"].split()) for row in rows)
    # spaCy counts tokens; the text's size is in whitespace words: the ratio of a sample.
    tokenizer = spacy.blank("en").tokenizer
    sample = [row["text"] for row in rows[:: max(1, len(rows) // 2000)]]
    tokens_per_word = sum(len(tokenizer(t)) for t in sample) / sum(len(t.split()) for t in sample)
    partial = args.weights.name.endswith(".temp.bin")
    # A .temp.bin checkpoint is part of the way through its epoch: count the part seen.
    fraction = round(last["nr_word"] / tokens_per_word / whitespace_words, 3) if partial else 1.0
    # A continued run (--continues) resumes as epoch K of its own slice of text: it
    # counts only the part of that slice it saw.
    epochs = fraction if args.continues else int(last["epoch"]) + fraction
    data = args.weights.read_bytes()
    meta = {
        "name": args.name,
        "architecture": {"@architectures": block["@architectures"], **{key: block.get(key, 0) for key in SHAPE_SETTINGS}},
        "objective": dict(config["pretraining"]["objective"]),
        "vectors_targets": "en_core_web_md 3.8.0 vectors (300-d, 20,000 rows; ../shared/vectors/en_core_web_md), used as targets only: not needed to use the encoder",
        "text": args.text,
        "texts": len(rows),
        "words_in_text": whitespace_words,
        "words_seen": int(last["nr_word"]),
        "words_seen_note": (
            f"spaCy tokens; about {round(last['nr_word'] / tokens_per_word):,} whitespace words "
            f"({tokens_per_word:.3f} tokens per word)"
            + (f", the start of the text (stopped at a checkpoint of epoch {last['epoch']})" if partial else "")
        ),
        "epochs": epochs,
        "loss": {"total": round(last["loss"], 2), "last_epoch": round(last["epoch_loss"], 2), "batches_of_words": config["pretraining"]["batcher"]["size"]},
        "pretraining_seconds": round(seconds),
        "words_per_second": round(last["nr_word"] / seconds) if seconds > 0 else None,
        "machine": args.machine,
        "torch": torch.__version__,
        "command": args.command,
        "license": "The weights: MIT, as spacy-encoder. The text they were trained on: CC BY-SA 3.0 (and GFDL); the model is not a copy of the text.",
        "credit": "Pretrained on text written by Wikipedia's contributors (https://en.wikipedia.org), CC BY-SA 3.0.",
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    if args.continues:
        meta = continued(meta, args.continues)
    OUT.mkdir(exist_ok=True)
    shutil.copyfile(args.weights, OUT / f"{args.name}.bin")
    srsly.write_json(OUT / f"{args.name}.json", meta)
    print(f"{OUT / args.name}.bin: {len(data) / 2**20:.1f} MB, {meta['words_seen']:,} words seen, sha256 {meta['sha256'][:12]}")


def continued(meta: dict, name: str) -> dict:
    """The meta of a run that resumed from the shipped encoder NAME: words, texts and
    seconds are the sums of both runs, and `history` keeps each run's own figures."""
    from spacy_encoder.pretrained import meta as shipped_meta

    before = shipped_meta(name)
    history = before.get("history") or [{key: before[key] for key in RUN_KEYS}]
    this = {key: meta[key] for key in RUN_KEYS}
    if before["architecture"] != meta["architecture"] or before["objective"] != meta["objective"]:
        raise SystemExit(f"--continues {name}: its architecture or objective is not the config's; a continued run keeps both")
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


if __name__ == "__main__":
    main()
