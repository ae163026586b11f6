"""The `spacy-encoder` command line as a surface: help that reads like spaCy's, fast."""
from __future__ import annotations

import subprocess
import sys

import click
import pytest
import typer.main
from typer.testing import CliRunner

from spacy_encoder.cli import app



def leaf_commands() -> dict:
    """`GROUP COMMAND` -> click command, for every command of every group (the hidden
    `project` group included; the hidden renamed flat names are not groups)."""
    root = typer.main.get_command(app)
    return {
        f"{group_name} {name}": command
        for group_name, group in root.commands.items()
        if hasattr(group, "commands")
        for name, command in group.commands.items()
    }


COMMANDS = sorted(leaf_commands())


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
        "for group_name, group in typer.main.get_command(app).commands.items():\n"
        "    for name in getattr(group, 'commands', {}):\n"
        "        assert runner.invoke(app, [group_name, name, '--help']).exit_code == 0, name\n"
        "print(sorted(m for m in ('spacy', 'torch', 'thinc') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", COMMANDS)
def test_command_help_reads_like_spacys(name):
    command = leaf_commands()[name]
    text = CliRunner().invoke(app, [*name.split(), "--help"], terminal_width=100).output
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
    text = CliRunner().invoke(app, ["deploy", "export", "--help"]).output
    assert "torchscript|export" in text and "{MODEL} {OUTPUT}" in text


@pytest.mark.parametrize(
    "args",
    [
        ["annotate", "text", "{missing}", "text"],
        ["inspect", "trace", "{missing}", "text"],
        ["deploy", "script", "{missing}", "{tmp}/out"],
        ["deploy", "export", "{missing}", "{tmp}/out.pt"],
        ["project", "show-metrics", "{missing}"],
        ["inspect", "unseen", "{missing}", "{missing}", "{missing}"],
        ["inspect", "training", "{missing}"],
        ["bench", "memory", "{missing}"],
        ["pretrain", "slice", "{missing}", "{tmp}/out", "{missing}"],
        ["convert", "conll", "{missing}", "{tmp}/x.spacy"],
        ["convert", "sst2", "{missing}", "{tmp}/x.spacy"],
        ["convert", "raw-text", "{missing}", "-o", "{tmp}/x.jsonl"],
        ["convert", "wiki-text", "{missing}", "-o", "{tmp}/x.jsonl"],
        ["annotate", "corpus", "{missing}", "{missing}", "{tmp}/out"],
    ],
    ids=lambda args: "-".join(args[:2]),
)
def test_a_missing_input_fails_in_one_line_naming_it(tmp_path, args):
    missing = str(tmp_path / "no-such-thing")
    result = CliRunner().invoke(app, [a.format(missing=missing, tmp=tmp_path) for a in args])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "no-such-thing" in " ".join(result.output.split()).replace(" ", "")
    assert "Traceback" not in result.output


def test_help_lists_the_groups_and_each_group_its_commands():
    from spacy_encoder.cli import GROUPS

    runner = CliRunner()
    top = runner.invoke(app, ["--help"], terminal_width=100).output
    shown = [name for name, (_, hidden) in GROUPS.items() if not hidden]
    assert [line.split()[0] for line in top.split("Commands:")[1].strip().splitlines()] == shown
    for group_name in GROUPS:
        text = runner.invoke(app, [group_name, "--help"], terminal_width=100).output
        listed = [line.split()[0] for line in text.split("Commands:")[1].strip().splitlines()]
        expected = [name.split()[1] for name in COMMANDS if name.split()[0] == group_name]
        assert sorted(listed) == sorted(expected) and listed, group_name
        assert all(not line.rstrip().endswith("...") for line in top.splitlines() if line.startswith("  ")), top


@pytest.mark.parametrize("old, new", [("init-config", "init config"), ("convert-conll", "convert conll"), ("plot-training", "inspect training")])
def test_a_renamed_command_says_its_new_name_in_one_line(old, new):
    from spacy_encoder.cli.renamed import RENAMED

    result = CliRunner().invoke(app, [old, "some", "--option", "x"], terminal_width=200)
    assert result.exit_code == 2
    assert f"is now `spacy-encoder {new}`" in " ".join(result.output.split())
    for old_name, new_name in RENAMED.items():
        group_name, name = new_name.split()[:2]
        assert f"{group_name} {name}" in COMMANDS, old_name
