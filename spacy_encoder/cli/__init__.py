"""The `spacy-encoder` command line, grouped as spaCy's own (`spacy init config`):
`spacy-encoder GROUP COMMAND`. One typer app; each module registers the commands of its
group(s) through `group`.

The command modules import nothing heavy at the top (spaCy and torch take seconds), so
`spacy-encoder --help` and argument errors are instant; tests check it. A command
imports the library module it drives (`from .. import corpora`) first thing in its body.
"""
import sys
from contextlib import contextmanager
from typing import Any, Dict, Iterator

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


@contextmanager
def step(text: str) -> Iterator[None]:
    """wasabi's spinner around a long step on a terminal; one line when the output goes
    to a file or a pipe (a log of a `spacy project run`), where each frame would be
    written out."""
    from wasabi import msg

    if sys.stdout.isatty():
        with msg.loading(text):
            yield
    else:
        print(text, flush=True)
        yield


# Plain click help, as spaCy's own CLI prints it: flags without a type, paragraphs
# rewrapped to the terminal.
_SETTINGS: Dict[str, Any] = {"no_args_is_help": True, "add_completion": False, "rich_markup_mode": None}

app = typer.Typer(
    name="spacy-encoder",
    help="Transformer encoder for spaCy: configs, corpora, vectors, deployment, inspection, benchmarks.",
    **_SETTINGS,
)

# name: (help, hidden). The order is the order of `spacy-encoder --help`; click cuts
# a group's line in that listing after 45 characters.
GROUPS = {
    "init": ("Write a training config with the encoder.", False),
    "convert": ("Convert corpora to .spacy files or JSONL.", False),
    "vectors": ("Prepare static vectors for the encoder.", False),
    "pretrain": ("Shipped pretrained encoders: list, make.", False),
    "deploy": ("Deploy: TorchScript, ONNX, export, serve.", False),
    "annotate": ("Annotate a text, or a corpus (local, Ray).", False),
    "inspect": ("Look inside a trained encoder.", False),
    "bench": ("Speed, memory and accuracy against the CNN.", False),
    "project": ("Plumbing for project.yml.", True),
}
_groups: Dict[str, typer.Typer] = {}
for _name, (_help, _hidden) in GROUPS.items():
    _groups[_name] = typer.Typer(help=_help, **_SETTINGS)
    app.add_typer(_groups[_name], name=_name, hidden=_hidden)


def group(name: str) -> typer.Typer:
    """The typer app of one command group (`spacy-encoder NAME ...`)."""
    return _groups[name]

# Importing the modules registers their commands on their groups.
from . import init_config  # noqa: E402,F401
from . import convert  # noqa: E402,F401
from . import vectors  # noqa: E402,F401
from . import pretrained  # noqa: E402,F401
from . import deploy  # noqa: E402,F401
from . import serve  # noqa: E402,F401
from . import annotate  # noqa: E402,F401
from . import inspect_cmds  # noqa: E402,F401
from . import bench  # noqa: E402,F401
from . import accuracy  # noqa: E402,F401
from . import project  # noqa: E402,F401
from . import renamed  # noqa: E402,F401


def main() -> None:
    app()
