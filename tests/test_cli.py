"""The `spacy-encoder` command line as a surface: help that reads like spaCy's, fast."""
from __future__ import annotations

import subprocess
import sys

import click
import pytest
import typer.main
from typer.testing import CliRunner

from spacy_encoder.cli import app

COMMANDS = sorted(typer.main.get_command(app).commands)


@pytest.mark.timeout(120)
def test_help_imports_neither_spacy_nor_torch():
    """`spacy-encoder --help` and every command's `--help` need only typer: spaCy and
    torch take seconds to import, so the commands import them when they run."""
    code = (
        "import sys, typer.main\n"
        "from typer.testing import CliRunner\n"
        "from spacy_encoder.cli import app\n"
        "runner = CliRunner()\n"
        "assert runner.invoke(app, ['--help']).exit_code == 0\n"
        "for name in typer.main.get_command(app).commands:\n"
        "    assert runner.invoke(app, [name, '--help']).exit_code == 0, name\n"
        "print(sorted(m for m in ('spacy', 'torch', 'thinc') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", COMMANDS)
def test_command_help_reads_like_spacys(name):
    command = typer.main.get_command(app).commands[name]
    text = CliRunner().invoke(app, [name, "--help"], terminal_width=100).output
    assert "<bool>" not in text  # flags take no value
    assert command.help and command.help.strip()[-1] in ".)", f"{name}: help text ends mid-sentence"
    for param in command.params:
        if param.param_type_name == "argument":
            assert param.metavar and param.metavar.isupper(), f"{name}: argument {param.name} shows as {param.metavar!r}"
        elif choices(param):
            assert "|".join(choices(param)) in text, f"{name}: {param.opts[0]} does not list its choices"
        if param.name != "help" and param.param_type_name == "option":
            assert param.help, f"{name}: {param.opts[0]} has no help text"


def choices(param) -> list[str]:
    """The values a choice option takes (typer >= 0.26 keeps them on its own params)."""
    kind = getattr(param, "type", None)
    if isinstance(kind, click.Choice):
        return [str(c) for c in kind.choices]
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None and descriptor.is_choice:
        return [str(getattr(c, "value", c)) for c in descriptor.choices]
    return []


def test_export_lists_its_formats():
    text = CliRunner().invoke(app, ["export", "--help"]).output
    assert "torchscript|export" in text and "{MODEL} {OUTPUT}" in text


@pytest.mark.parametrize(
    "args",
    [
        ["annotate", "{missing}", "text"],
        ["trace", "{missing}", "text"],
        ["script", "{missing}", "{tmp}/out"],
        ["export", "{missing}", "{tmp}/out.pt"],
        ["show-metrics", "{missing}"],
        ["unseen-entities", "{missing}", "{missing}", "{missing}"],
        ["plot-training", "{missing}"],
        ["bench-memory", "{missing}"],
        ["pretrain-slice", "{missing}", "{tmp}/out", "{missing}"],
        ["convert-conll", "{missing}", "{tmp}/x.spacy"],
        ["convert-sst2", "{missing}", "{tmp}/x.spacy"],
        ["raw-text", "{missing}", "-o", "{tmp}/x.jsonl"],
        ["wiki-text", "{missing}", "-o", "{tmp}/x.jsonl"],
        ["annotate-corpus", "{missing}", "{missing}", "{tmp}/out"],
    ],
    ids=lambda args: args[0],
)
def test_a_missing_input_fails_in_one_line_naming_it(tmp_path, args):
    missing = str(tmp_path / "no-such-thing")
    result = CliRunner().invoke(app, [a.format(missing=missing, tmp=tmp_path) for a in args])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "no-such-thing" in " ".join(result.output.split()).replace(" ", "")
    assert "Traceback" not in result.output
