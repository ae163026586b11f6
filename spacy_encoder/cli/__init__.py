"""The `spacy-encoder` command line: one typer app, one module per group of commands."""
import typer

app = typer.Typer(
    name="spacy-encoder",
    help="Transformer encoder for spaCy: corpus conversion, export, inspection, benchmarks.",
    no_args_is_help=True,
    add_completion=False,
)

# Importing the modules registers their commands on `app`.
from . import convert  # noqa: E402,F401
from . import inspect_cmds  # noqa: E402,F401
from . import project  # noqa: E402,F401
from . import deploy  # noqa: E402,F401
from . import bench  # noqa: E402,F401
from . import accuracy  # noqa: E402,F401
from . import pretrained  # noqa: E402,F401


def main() -> None:
    app()
