import random
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def load_tool(name: str):
    """tools/NAME.py, imported from its path (tools/ is not a package)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    tool = importlib.util.module_from_spec(spec)
    sys.modules[name] = tool  # as an import does: dataclasses look their module up there
    spec.loader.exec_module(tool)
    return tool
SHARED_CORPORA = (REPO / ".." / "shared" / "corpora").resolve()


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    numpy.random.seed(0)
    torch.manual_seed(0)
    yield


def run_without_torch(code: str, cwd: Path, blocked: tuple = ("torch",), check: bool = True) -> str:
    """Run `code` in a fresh Python process where `import torch` (and every other
    package in `blocked`) fails; returns its stdout (with `check`, the test fails with
    its stderr if it does; without, stdout and stderr together)."""
    blocker = (
        "import sys\n"
        "class Blocked:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {tuple(blocked)!r}:\n"
        "            raise ImportError(name + ' is blocked in this process')\n"
        "sys.meta_path.insert(0, Blocked())\n"
    )
    done = subprocess.run([sys.executable, "-c", blocker + code], capture_output=True, text=True, timeout=300, cwd=cwd)
    if not check:
        return done.stdout + done.stderr
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def shared_corpus(*parts: str) -> Path:
    """A file of the research corpora beside the repo, or skip the test."""
    path = SHARED_CORPORA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (research-only corpora live in ../shared/corpora, not in the repo)")
    return path


def dropout_kinds(nlp) -> list:
    """The class name of every dropout module (nn.Dropout or FastDropout) in the torch
    module of `nlp`'s tok2vec, in module order."""
    from spacy_encoder.nodes import encoder_nodes, torch_module
    from spacy_encoder.pytorch import FastDropout

    module = torch_module(next(encoder_nodes(nlp.get_pipe("tok2vec").model)))
    return [type(m).__name__ for m in module.modules() if isinstance(m, (torch.nn.Dropout, FastDropout))]


def pytest_addoption(parser):
    parser.addoption(
        "--regen-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/released.json from the code as it is (only for a new registered name)",
    )
