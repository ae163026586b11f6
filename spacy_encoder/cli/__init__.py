"""The `spacy-encoder` command line: one typer app, one module per group of commands.

The command modules import nothing heavy at the top (spaCy and torch take seconds), so
`spacy-encoder --help` and argument errors are instant; tests check it. A command
imports the library module it drives (`from .. import corpora`) first thing in its body.
"""
from typing import Any

import typer


def load_pipeline(model: Any) -> Any:
    """`spacy.load(model)`, or one line naming MODEL and exit 1 when it does not load
    (missing, or damaged: `weights.load_pipeline` names a damaged file)."""
    from wasabi import msg

    from ..weights import load_pipeline as load

    try:
        return load(model)
    except (OSError, ValueError) as err:
        msg.fail(f"Cannot load '{model}' (a pipeline directory or an installed package): {' '.join(str(err).split())}")
        raise typer.Exit(1) from None


app = typer.Typer(
    name="spacy-encoder",
    help="Transformer encoder for spaCy: corpus conversion, export, inspection, benchmarks.",
    no_args_is_help=True,
    add_completion=False,
    # Plain click help, as spaCy's own CLI prints it: flags without a type, paragraphs
    # rewrapped to the terminal.
    rich_markup_mode=None,
)

# Importing the modules registers their commands on `app`.
from . import convert  # noqa: E402,F401
from . import inspect_cmds  # noqa: E402,F401
from . import project  # noqa: E402,F401
from . import deploy  # noqa: E402,F401
from . import bench  # noqa: E402,F401
from . import accuracy  # noqa: E402,F401
from . import pretrained  # noqa: E402,F401
from . import init_config  # noqa: E402,F401
from . import annotate_corpus  # noqa: E402,F401


def main() -> None:
    app()
