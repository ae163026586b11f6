"""The flat command names of earlier versions, hidden: each says in one line what it is
called now (exit 2), instead of click's "No such command"."""
from __future__ import annotations

import typer
from wasabi import msg

from . import app

RENAMED = {
    "init-config": "init config",
    "convert-conll": "convert conll",
    "convert-wikigold": "convert wikigold",
    "convert-sst2": "convert sst2",
    "convert-goemotions": "convert goemotions",
    "raw-text": "convert raw-text",
    "wiki-text": "convert wiki-text",
    "case-vectors": "vectors case",
    "concat-vectors": "vectors concat",
    "vector-coverage": "vectors coverage",
    "pretrained": "pretrain list (or: pretrain show NAME)",
    "pretrain-slice": "pretrain slice",
    "ship-pretrained": "pretrain ship",
    "script": "deploy script",
    "export": "deploy export",
    "annotate-corpus": "annotate corpus",
    "attention": "inspect attention",
    "trace": "inspect trace",
    "plot-training": "inspect training",
    "unseen-entities": "inspect unseen",
    "benchmark-accuracy": "bench accuracy",
    "tune-threshold": "bench threshold",
    "bench-memory": "bench memory",
    "copy-corpora": "project copy-corpora",
    "reset-dir": "project reset-dir",
    "show-metrics": "project show-metrics",
}
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def _register(old: str, new: str) -> None:
    def renamed(ctx: typer.Context) -> None:
        msg.fail(f"`spacy-encoder {old}` is now `spacy-encoder {new}` (same arguments and options).")
        raise typer.Exit(2)

    app.command(old, hidden=True, context_settings=PASS_THROUGH)(renamed)


for _old, _new in RENAMED.items():
    _register(_old, _new)
