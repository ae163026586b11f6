"""`spacy-encoder project ...` (hidden from --help): plumbing that `project.yml` (a
spaCy / weasel project) runs besides spaCy's own.

- `copy-corpora`: the offline stand-in for `spacy project assets`: copy the research
  corpora from a local folder into `assets/`, checked against the md5 checksums that
  the project's `assets` list declares (one list of checksums, not two).
- `reset-dir`: empty a training output folder before `spacy train`, because spaCy's
  console logger will not overwrite an existing log file (it silently stops logging).
- `show-metrics`: print the main scores of `spacy evaluate --output` JSON files.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer
from wasabi import msg

from . import group

PROJECT_FILE = "project.yml"


# --- copy-corpora -------------------------------------------------------------------


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def project_assets(project_dir: Path) -> list[dict[str, Any]]:
    """The URL assets of `project_dir/project.yml` (each with `dest` and maybe `checksum`)."""
    import srsly

    path = project_dir / PROJECT_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found (use --project-dir)")
    config = srsly.read_yaml(path) or {}
    return [asset for asset in config.get("assets", []) if "dest" in asset]


def plan_copies(source_dir: Path, project_dir: Path, assets: list[dict[str, Any]], assets_dir: str = "assets") -> list[tuple[Path, Path, str | None]]:
    """(source, destination, expected md5) for each asset under `assets_dir/`:
    `assets/conll2003/train.txt` comes from `SOURCE_DIR/conll2003/train.txt`."""
    copies = []
    for asset in assets:
        dest = Path(asset["dest"])
        try:
            relative = dest.relative_to(assets_dir)
        except ValueError:
            continue
        copies.append((source_dir / relative, project_dir / dest, asset.get("checksum")))
    return copies


def check_copies(copies: list[tuple[Path, Path, str | None]]) -> list[str]:
    """One line per problem: a missing source file or a checksum that differs."""
    problems = []
    for source, _, checksum in copies:
        if not source.is_file():
            problems.append(f"missing: {source}")
        elif checksum and md5sum(source) != checksum.lower():
            problems.append(f"checksum differs: {source} has md5 {md5sum(source)}, project.yml expects {checksum.lower()}")
    return problems


@group("project").command("copy-corpora")
def copy_corpora(
    source_dir: Annotated[Path, typer.Argument(metavar="SOURCE_DIR", help="Local folder holding the corpora, laid out as the assets are under assets/ (e.g. ../shared/corpora).")],
    project_dir: Annotated[Path, typer.Option("--project-dir", help="Folder of project.yml, whose `assets` list names the files and their md5 checksums.")] = Path("."),
) -> None:
    """Copy the project's assets from a local folder instead of downloading them.

    Every asset `assets/X` of project.yml is copied from `SOURCE_DIR/X`, after checking
    every source against the asset's md5 checksum. If any file is missing or differs,
    nothing is copied and each problem is named.
    """
    try:
        copies = plan_copies(source_dir, project_dir, project_assets(project_dir))
    except (OSError, ValueError) as err:
        msg.fail(str(err))
        raise typer.Exit(1) from None
    if not copies:
        msg.fail(f"{project_dir / PROJECT_FILE} declares no assets under assets/")
        raise typer.Exit(1)
    problems = check_copies(copies)
    if problems:
        msg.fail(f"Not copying from {source_dir}: {len(problems)} of {len(copies)} files are missing or differ")
        for problem in problems:
            print(f"  {problem}")
        raise typer.Exit(1)
    for source, dest, checksum in copies:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        note = "md5 ok" if checksum else "no checksum in project.yml"
        msg.good(f"{source} -> {dest} ({note})")


# --- reset-dir ----------------------------------------------------------------------


@group("project").command("reset-dir")
def reset_dir(
    path: Annotated[Path, typer.Argument(metavar="DIR", help="Folder to delete (if present) and create empty.")],
) -> None:
    """Delete a folder and create it empty (a training output folder before `spacy train`)."""
    if path.resolve() in (Path.cwd().resolve(), *Path.cwd().resolve().parents):
        msg.fail(f"Refusing to delete {path}: it holds the current folder")
        raise typer.Exit(1)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    msg.good(f"{path}: empty")


# --- show-metrics -------------------------------------------------------------------

# For exclusive cats, micro F is accuracy (one gold and one predicted label per doc).
MAIN_SCORES = [
    ("ents_p", "NER P"),
    ("ents_r", "NER R"),
    ("ents_f", "NER F"),
    ("cats_score", "TEXTCAT"),
    ("cats_micro_f", "TEXTCAT micro F"),
    ("cats_macro_auc", "TEXTCAT macro AUC"),
]


def pct(value: Any) -> str:
    return f"{100 * value:.2f}" if isinstance(value, (int, float)) else "-"


def metrics_rows(data: dict[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str, str, str]]]:
    """Main scores, then (type, P, R, F) per entity type or cat."""
    main = []
    for key, name in MAIN_SCORES:
        if isinstance(data.get(key), (int, float)):
            if key == "cats_score" and data.get("cats_score_desc"):
                name = f"{name} ({data['cats_score_desc']})"
            main.append((name, pct(data[key])))
    if "speed" in data:
        main.append(("speed (words/s)", f"{data['speed']:,.0f}"))
    per_type = data.get("ents_per_type") or data.get("cats_f_per_type") or {}
    rows = [(label, pct(s.get("p")), pct(s.get("r")), pct(s.get("f"))) for label, s in per_type.items()]
    return main, rows


@group("project").command("show-metrics")
def show_metrics(
    paths: Annotated[list[Path], typer.Argument(metavar="METRICS_JSON", help="Output files of `spacy evaluate --output`.")],
) -> None:
    """Print the main scores and the per-type P/R/F of `spacy evaluate` JSON files."""
    failed = False
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            msg.fail(f"{path}: {err}")
            failed = True
            continue
        main, rows = metrics_rows(data)
        msg.divider(str(path))
        msg.table(main, divider=False)
        if rows:
            msg.table(rows, header=("type", "P", "R", "F"), divider=True, aligns=("l", "r", "r", "r"))
    if failed:
        raise typer.Exit(1)
