"""The package's shape, pinned where a reader cannot see it from one file: it changes
no class of spaCy's or thinc's, and one module reaches into our layers' shims."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "spacy_encoder"
SOURCES = sorted(PACKAGE.rglob("*.py"))
FRAMEWORKS = ("spacy", "thinc", "confection")


def _framework_names(tree: ast.Module) -> set:
    """Names a module binds to something imported from spaCy, thinc or confection."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FRAMEWORKS:
            names.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names if alias.name.split(".")[0] in FRAMEWORKS)
    return names


def _root(node: ast.AST) -> str:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else ""


def framework_assignments(source: str) -> list:
    """`X.attr = ...`, `setattr(X, ...)` or `del X.attr` where X is imported from a framework."""
    tree = ast.parse(source)
    imported = _framework_names(tree)
    found = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, (ast.Assign, ast.Delete)):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr"):
            targets = [ast.Attribute(value=node.args[0], attr="?")] if node.args else []
        for target in targets:
            if isinstance(target, ast.Attribute) and _root(target) in imported:
                found.append((node.lineno, ast.unparse(target)))
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_class_of_spacy_or_thinc_is_changed(path):
    assert framework_assignments(path.read_text(encoding="utf8")) == []


def test_the_check_finds_a_patch():
    patched = "from spacy.language import Language\nLanguage.from_disk = lambda self, p: self\n"
    assert framework_assignments(patched) == [(2, "Language.from_disk")]
    assert framework_assignments("import spacy\nsetattr(spacy.language.Language, 'x', 1)\n")
    assert framework_assignments("from thinc.api import Model\nx = Model\nx.name = 'y'\n") == []


def test_only_the_accessor_reaches_into_shims():
    reaching = [
        f"{path.relative_to(PACKAGE)}:{i}"
        for path in SOURCES
        if path.name != "nodes.py"
        for i, line in enumerate(path.read_text(encoding="utf8").splitlines(), 1)
        if ".shims[" in line or "layers[0].shims" in line
    ]
    assert reaching == []
