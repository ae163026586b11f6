"""The README is the front door: short, self-contained, and its quickstart works when
pasted.

The quickstart's blocks (```bash and ```python, in order, under "## Quickstart") run in
a temporary folder that holds only a copy of corpus/wikigold, as a user runs them from
a clone after installing: `spacy-encoder` on PATH, this checkout importable. The
set-up commands that CI relies on stay as they are. What every page's blocks must do
(config blocks, commands, links) is checked in tests/test_docs.py, README included.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import pytest

from .conftest import REPO

README = REPO / "README.md"
TEXT = README.read_text(encoding="utf-8")
CI_INSTALL = 'pip install "torch==2.13.0" -e ".[test]" && python -m spacy project run demo'
CI_TEST = "python -m pytest"


def section(title: str) -> str:
    """The text of one `## title` section of the README."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", TEXT, flags=re.M | re.S)
    assert match, f"README.md has no section '## {title}'"
    return match.group(1)


def code_blocks(text: str) -> List[Tuple[str, str]]:
    """(language, body) of each fenced block of TEXT, in order."""
    return [(language, body) for language, body in re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.M | re.S)]


def test_the_readme_is_short():
    assert len(TEXT.splitlines()) <= 200, "README.md is the front door: keep it within 200 lines, move the rest to docs/"


def test_the_quickstart_is_on_the_first_screens():
    assert TEXT.index("## Quickstart") < TEXT.index("## Registered names") < TEXT.index("## Set up for development")
    assert TEXT[: TEXT.index("## Quickstart")].count("\n") < 60


def test_nothing_in_the_readme_depends_on_shared():
    assert "../shared" not in TEXT and "shared/" not in TEXT


def test_the_readme_links_every_docs_page():
    linked = set(re.findall(r"\]\(docs/([\w-]+\.md)\)", TEXT))
    pages = {path.name for path in (REPO / "docs").glob("*.md")}
    assert pages <= linked, f"README.md does not link {sorted(pages - linked)}"


def test_the_readme_keeps_the_commands_that_ci_relies_on():
    """`.ci/run` installs as the README says and runs the README's test command."""
    blocks = [body for language, body in code_blocks(section("Set up for development")) if language == "bash"]
    assert [CI_INSTALL, CI_TEST] in [body.strip().splitlines() for body in blocks], blocks
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert 'pip install --quiet "torch==2.13.0" -e ".[test]"' in ci
    assert ci.rstrip().splitlines()[-1] == CI_TEST


def test_the_quickstart_uses_the_documented_defaults():
    """`init config` with its default start, the shipped corpus, a short training, the
    fastest deploy mode."""
    quickstart = section("Quickstart")
    assert "spacy-encoder init config config.cfg --pipeline ner\n" in quickstart
    assert "--optimize efficiency" in quickstart and "--training.max_steps" in quickstart
    assert "--optimize int8" in quickstart and "spacy.load(" in quickstart


@pytest.mark.timeout(600)
def test_the_quickstart_runs_as_pasted(tmp_path):
    """Every block of the quickstart, in order, in a folder that holds a copy of
    corpus/wikigold only: about a minute on 2 CPU cores."""
    shutil.copytree(REPO / "corpus" / "wikigold", tmp_path / "corpus" / "wikigold")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": "PASSIVE"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    blocks = code_blocks(section("Quickstart"))
    assert [language for language, _ in blocks] == ["bash", "python", "bash"], blocks
    outputs = []
    for number, (language, body) in enumerate(blocks, 1):
        if language == "bash":
            argv = ["bash", "-euo", "pipefail", "-c", body]
        else:
            script = tmp_path / f"quickstart_{number}.py"
            script.write_text(body, encoding="utf-8")
            argv = [sys.executable, str(script)]
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=420)
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"quickstart block {number} ({language}) exited with {done.returncode}:\n{output[-5000:]}"
        assert "Traceback" not in output, output[-5000:]
        outputs.append(done.stdout)
    assert (tmp_path / "training" / "quickstart" / "model-best" / "config.cfg").exists()
    assert (tmp_path / "training" / "quickstart-int8" / "config.cfg").exists()
    entities, shape = outputs[1].strip().splitlines()[-2:]
    assert entities.startswith("[") and shape.endswith(", 128)"), outputs[1]
