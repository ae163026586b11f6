"""project.yml (spaCy / weasel project) and the `spacy-encoder` commands it runs.

The fast tests check the project file itself: it validates with weasel, its workflows
name real commands in an order where every dependency is made by an earlier step (or is
in the repository), and the training commands depend on all of the model code. The
slow test runs the whole `demo` workflow on a tiny slice in a copy of the project and
loads the installed package in a new process.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
import srsly
from spacy.language import Language
from typer.testing import CliRunner
from weasel.schemas import ProjectConfigSchema, validate
from weasel.util import load_project_config
from weasel.util.validation import validate_project_commands

from spacy_encoder.cli import app
from spacy_encoder.cli.project import metrics_rows

ROOT = Path(__file__).resolve().parents[1]
SHARED = (ROOT / ".." / "shared" / "corpora").resolve()
MODEL_CODE = [
    f"spacy_encoder/{name}.py" for name in ("architectures", "layers", "buckets", "nodes", "shims", "weights", "callbacks")
] + sorted(
    p.relative_to(ROOT).as_posix() for p in (ROOT / "spacy_encoder" / "pytorch").glob("*.py")
)
# Commands with no outputs always rerun: the demo's end and the benchmark summary.
ALWAYS_RUN = {"install-demo", "show-benchmarks"}

runner = CliRunner()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict:
    """project.yml with variables substituted (loaded from a copy: weasel creates the
    project's directories next to the file it loads)."""
    tmp = tmp_path_factory.mktemp("project")
    shutil.copy(ROOT / "project.yml", tmp / "project.yml")
    return load_project_config(tmp)


@pytest.fixture(scope="module")
def commands(project) -> dict[str, dict]:
    return {cmd["name"]: cmd for cmd in project["commands"]}


def outputs_of(commands: dict[str, dict]) -> dict[str, str]:
    return {out: name for name, cmd in commands.items() for out in cmd.get("outputs", [])}


def in_repo(path: str) -> bool:
    return (ROOT / path).resolve().is_relative_to(ROOT)


def is_local_data(dep: str, project: dict) -> bool:
    """A research corpus or the GloVe file beside the repository (in ../shared)."""
    return dep.startswith(project["vars"]["corpora_dir"] + "/") or dep == project["vars"]["glove_file"]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --- the project file ---------------------------------------------------------------


def test_project_yml_validates() -> None:
    raw = srsly.read_yaml(ROOT / "project.yml")
    assert validate(ProjectConfigSchema, raw) == []
    validate_project_commands(raw)  # exits on duplicate names or unknown workflow steps
    for key in ("title", "description", "vars", "directories", "assets", "workflows", "commands"):
        assert raw.get(key), key
    assert raw["vars"]["gpu_id"] == -1
    assert raw["vars"]["corpora_dir"] == "../shared/corpora"


def test_variables_all_resolve(project) -> None:
    assert "${" not in json.dumps(project)


def test_workflow_steps_are_commands(project, commands) -> None:
    assert {"demo", "all"} <= set(project["workflows"])
    for workflow, steps in project["workflows"].items():
        assert steps, workflow
        for step in steps:
            assert step in commands, f"workflow {workflow}: no command {step!r}"


def test_every_command_has_help_deps_and_outputs(commands) -> None:
    for name, cmd in commands.items():
        assert cmd.get("help"), name
        assert cmd.get("script"), name
        assert cmd.get("deps"), name
        if name not in ALWAYS_RUN:
            assert cmd.get("outputs"), f"{name} has no outputs, so it would always rerun"


def test_scripts_run_with_weasels_interpreter(commands) -> None:
    """`python`/`pip` are replaced by the interpreter running weasel; a bare
    `spacy-encoder` would need the venv's bin/ on PATH."""
    for name, cmd in commands.items():
        for line in cmd["script"]:
            assert line.split()[0] in ("python", "pip"), f"{name}: {line}"


def test_repository_deps_exist(project, commands) -> None:
    """Every dependency is a file of the repository, made by some command, an asset,
    one of the local research corpora, or the local GloVe file."""
    made = outputs_of(commands)
    assets = {a["dest"] for a in project["assets"]}
    for name, cmd in commands.items():
        for dep in cmd["deps"]:
            if dep in made or dep in assets or is_local_data(dep, project):
                continue
            assert in_repo(dep), f"{name}: {dep} is outside the repository"
            assert (ROOT / dep).exists(), f"{name}: {dep} does not exist"


@pytest.mark.parametrize("workflow", ["demo", "all", "benchmarks", "conll-glove"])
def test_workflow_makes_deps_before_use(workflow, project, commands) -> None:
    """Run in order, each step finds its deps: in the repository, made by an earlier
    step, or (benchmarks only, after `spacy project assets`) downloaded assets."""
    made = outputs_of(commands)
    available = set()
    if workflow == "benchmarks":
        available |= {a["dest"] for a in project["assets"]}
    for step in project["workflows"][workflow]:
        cmd = commands[step]
        for dep in cmd["deps"]:
            if dep in made:
                assert dep in available, f"{workflow}: {step} needs {dep}, made later by {made[dep]}"
            elif not is_local_data(dep, project):
                assert (ROOT / dep).exists(), f"{workflow}: {step} needs {dep}"
        available |= set(cmd.get("outputs", []))


def test_training_depends_on_all_model_code(commands) -> None:
    train = [name for name in commands if name.startswith("train-")]
    assert len(train) == 6
    for name in train:
        missing = set(MODEL_CODE) - set(commands[name]["deps"])
        assert not missing, f"{name}: add {sorted(missing)} to its deps"
        assert any(dep.startswith("configs/") for dep in commands[name]["deps"])


def test_demo_uses_embedded_corpora_only(project, commands) -> None:
    for step in project["workflows"]["demo"]:
        for dep in commands[step]["deps"]:
            assert not dep.startswith(("assets/", project["vars"]["corpora_dir"])), f"{step}: {dep}"


def test_assets_match_copy_corpora_layout(project) -> None:
    """Each asset is assets/<corpus>/<file>, with an md5, so `copy-corpora` can find
    <corpora_dir>/<corpus>/<file> and check it."""
    dests = sorted(a["dest"] for a in project["assets"])
    assert dests == sorted(
        ["assets/conll2003/train.txt", "assets/conll2003/dev.txt", "assets/conll2003/test.txt", "assets/sst2/train.tsv", "assets/sst2/dev.tsv"]
    )
    for asset in project["assets"]:
        assert len(asset["checksum"]) == 32
        assert asset["url"].startswith("https://raw.githubusercontent.com/")


def test_asset_checksums_match_local_corpora(project) -> None:
    checked = 0
    for asset in project["assets"]:
        source = SHARED / Path(asset["dest"]).relative_to("assets")
        if source.exists():
            assert md5(source) == asset["checksum"], source
            checked += 1
    if not checked:
        pytest.skip(f"{SHARED} is absent (research-only corpora)")


# --- copy-corpora -------------------------------------------------------------------


def fake_project(tmp_path: Path, files: dict[str, bytes]) -> tuple[Path, Path]:
    """A project whose assets are `files`, and a source folder holding them."""
    project_dir, source = tmp_path / "project", tmp_path / "corpora"
    project_dir.mkdir()
    assets = []
    for name, data in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
        assets.append({"dest": f"assets/{name}", "url": f"https://example.org/{name}", "checksum": hashlib.md5(data).hexdigest()})
    srsly.write_yaml(project_dir / "project.yml", {"title": "t", "assets": assets, "commands": []})
    return project_dir, source


def test_copy_corpora_copies_checked_files(tmp_path: Path) -> None:
    project_dir, source = fake_project(tmp_path, {"a/train.txt": b"x y\n", "b/dev.tsv": b"s\t1\n"})
    result = runner.invoke(app, ["project", "copy-corpora", str(source), "--project-dir", str(project_dir)])
    assert result.exit_code == 0, result.output
    assert (project_dir / "assets/a/train.txt").read_bytes() == b"x y\n"
    assert (project_dir / "assets/b/dev.tsv").read_bytes() == b"s\t1\n"


def test_copy_corpora_names_missing_file_and_copies_nothing(tmp_path: Path) -> None:
    project_dir, source = fake_project(tmp_path, {"a/train.txt": b"x y\n", "a/test.txt": b"z\n"})
    (source / "a/test.txt").unlink()
    result = runner.invoke(app, ["project", "copy-corpora", str(source), "--project-dir", str(project_dir)])
    assert result.exit_code == 1
    assert "missing" in result.output and "a/test.txt" in result.output
    assert not (project_dir / "assets").exists()


def test_copy_corpora_names_file_whose_checksum_differs(tmp_path: Path) -> None:
    project_dir, source = fake_project(tmp_path, {"a/train.txt": b"x y\n", "a/dev.txt": b"z\n"})
    (source / "a/dev.txt").write_bytes(b"z\r\n")
    result = runner.invoke(app, ["project", "copy-corpora", str(source), "--project-dir", str(project_dir)])
    assert result.exit_code == 1
    assert "checksum differs" in result.output and "a/dev.txt" in result.output
    assert "a/train.txt" not in result.output
    assert not (project_dir / "assets").exists()


def test_copy_corpora_without_project_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["project", "copy-corpora", str(tmp_path), "--project-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "project.yml" in result.output


def test_copy_corpora_real_corpora(tmp_path: Path) -> None:
    if not (SHARED / "conll2003").exists() or not (SHARED / "sst2").exists():
        pytest.skip(f"{SHARED} is absent (research-only corpora)")
    shutil.copy(ROOT / "project.yml", tmp_path / "project.yml")
    result = runner.invoke(app, ["project", "copy-corpora", str(SHARED), "--project-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for asset in srsly.read_yaml(ROOT / "project.yml")["assets"]:
        assert md5(tmp_path / asset["dest"]) == asset["checksum"]


# --- reset-dir, annotate, show-metrics ----------------------------------------------


def test_reset_dir(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "training" / "x"
    (target / "model-best").mkdir(parents=True)
    (target / "log.jsonl").write_text("{}")
    assert runner.invoke(app, ["project", "reset-dir", str(target)]).exit_code == 0
    assert target.is_dir() and not any(target.iterdir())
    monkeypatch.chdir(target)
    result = runner.invoke(app, ["project", "reset-dir", str(tmp_path)])
    assert result.exit_code == 1 and tmp_path.exists()


@Language.component("test_project_cats")
def _fixed_cats(doc):
    doc.cats = {"negative": 0.2, "positive": 0.8}
    return doc


def test_annotate_prints_entities_and_cats(tmp_path: Path) -> None:
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "PER", "pattern": "Ada Lovelace"}])
    nlp.add_pipe("test_project_cats")
    nlp.to_disk(tmp_path / "pipeline")
    text = "Ada Lovelace wrote the first program."
    result = runner.invoke(app, ["annotate", "text", str(tmp_path / "pipeline"), text])
    assert result.exit_code == 0, result.output
    assert "Ada Lovelace" in result.output and "PER" in result.output and "0-12" in result.output
    assert result.output.index("positive") < result.output.index("negative")  # best cat first
    result = runner.invoke(app, ["annotate", "text", str(tmp_path / "pipeline"), text, "--json"])
    data = json.loads(result.output)
    assert data["ents"] == [["Ada Lovelace", "PER", 0, 12]]
    assert data["cats"] == {"positive": 0.8, "negative": 0.2}


def test_annotate_unknown_model() -> None:
    result = runner.invoke(app, ["annotate", "text", "en_no_such_package_here", "text"])
    assert result.exit_code == 1
    assert "en_no_such_package_here" in result.output


def test_show_metrics(tmp_path: Path) -> None:
    ner = {"ents_p": 0.8, "ents_r": 0.9, "ents_f": 0.85, "speed": 12345.6, "ents_per_type": {"PER": {"p": 1.0, "r": 0.5, "f": 0.6667}}}
    cats = {"token_acc": 1.0, "cats_score": 0.5, "cats_score_desc": "macro F", "cats_micro_f": 0.75, "cats_f_per_type": {"POSITIVE": {"p": 0.5, "r": 0.5, "f": 0.5}}}
    (tmp_path / "ner.json").write_text(json.dumps(ner))
    (tmp_path / "cats.json").write_text(json.dumps(cats))
    result = runner.invoke(app, ["project", "show-metrics", str(tmp_path / "ner.json"), str(tmp_path / "cats.json")])
    assert result.exit_code == 0, result.output
    for expected in ("NER F", "85.00", "12,346", "PER", "66.67", "TEXTCAT (macro F)", "50.00", "micro F", "75.00", "POSITIVE"):
        assert expected in result.output
    main, rows = metrics_rows(cats)
    assert ("TEXTCAT (macro F)", "50.00") in main and all("token" not in name for name, _ in main)
    result = runner.invoke(app, ["project", "show-metrics", str(tmp_path / "missing.json")])
    assert result.exit_code == 1 and "missing.json" in result.output


# --- the demo workflow, end to end ------------------------------------------------------


def copy_project(dst: Path) -> Path:
    skip = shutil.ignore_patterns(
        ".git", ".venv", "venv", "__pycache__", "*.egg-info", "*.spacy", "project.lock", "training", "metrics", "packages", "assets"
    )
    shutil.copytree(ROOT, dst, ignore=skip)
    return dst


def first_wikigold_articles(path: Path, n: int) -> None:
    """Keep the first n articles (each ends with a `-DOCSTART- O` line and a blank line)."""
    lines, seen = [], 0
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        lines.append(line)
        if line.startswith("-DOCSTART-"):
            seen += 1
        elif seen == n and not line.strip():
            break
    path.write_text("".join(lines), encoding="utf-8")


def run_demo(project_dir: Path, **overrides) -> str:
    args = [f"--vars.{key}={value}" for key, value in overrides.items()]
    proc = subprocess.run(
        [sys.executable, "-m", "spacy", "project", "run", "demo", str(project_dir), *args],
        cwd=project_dir,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_demo_workflow_installs_working_packages(tmp_path: Path) -> None:
    project_dir = copy_project(tmp_path / "project")
    first_wikigold_articles(project_dir / "corpus" / "wikigold" / "wikigold.conll.txt", 12)
    prefix = "encodertest"
    names = [f"en_{prefix}_wikigold_ner", f"en_{prefix}_goemotions_sentiment"]
    tiny = dict(
        demo_ner_steps=4, demo_textcat_steps=4, eval_frequency=2, demo_goemotions_train_limit=60, demo_goemotions_eval_limit=20, package_prefix=prefix
    )
    try:
        out = run_demo(project_dir, **tiny)
        assert "Successfully installed" in out
        assert out.count(f"Loaded en_{prefix}_") == 2
        assert "wikigold_ner.json" in out and "TEXTCAT (macro F)" in out

        # The wheels need spacy-encoder: spaCy found its registered architectures.
        for name in names:
            (wheel,) = (project_dir / "packages").glob(f"{name}-0.1.0/dist/*.whl")
            metadata = subprocess.run(
                [sys.executable, "-c", f"import zipfile; print(zipfile.ZipFile({str(wheel)!r}).read('{name}-0.1.0.dist-info/METADATA').decode())"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert "Requires-Dist: spacy-encoder" in metadata

        # Loading by package name works in a fresh process.
        code = (
            "import spacy, json; "
            f"ner = spacy.load('{names[0]}'); cats = spacy.load('{names[1]}'); "
            "doc = ner('Ada Lovelace lived in London.'); "
            "print(json.dumps([ner.pipe_names, cats.pipe_names, sorted(cats('Thanks!').cats)]))"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
        ner_pipes, cat_pipes, labels = json.loads(proc.stdout.strip().splitlines()[-1])
        assert ner_pipes == ["tok2vec", "ner"] and cat_pipes == ["tok2vec", "textcat"]
        assert labels == ["ambiguous", "negative", "neutral", "positive"]

        # A rerun redoes only what changed: a new NER budget retrains NER, nothing else.
        out = run_demo(project_dir, **{**tiny, "demo_ner_steps": 6})
        for skipped in ("convert-wikigold", "convert-goemotions-sentiment", "train-goemotions-sentiment", "evaluate-goemotions-sentiment", "package-goemotions-sentiment"):
            assert f"Skipping '{skipped}': nothing changed" in out
        assert "Skipping 'train-wikigold-ner'" not in out
        assert "--training.max_steps 6" in out
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "--yes", *names], capture_output=True)


# --- every workflow's first steps, from a fresh copy ---------------------------------------

# A workflow's long work starts at its first training; what comes before it (copying,
# converting, preparing vectors and text) runs here for every workflow.
LONG_STEP_PREFIXES = ("train-", "pretrain-", "accuracy-benchmark")


def first_steps(project: dict) -> list:
    """The steps of every workflow before its first long one, each once, in order."""
    steps: list = []
    for workflow in project["workflows"].values():
        for step in workflow:
            if step.startswith(LONG_STEP_PREFIXES):
                break
            if step not in steps:
                steps.append(step)
    return steps


def test_first_steps_cover_every_workflow(project) -> None:
    steps = first_steps(project)
    assert {"copy-corpora", "convert-conll2003", "glove-vectors", "convert-wikipedia", "convert-wikigold"} <= set(steps)
    for name, workflow in project["workflows"].items():
        assert workflow[0] in steps, name


@pytest.mark.timeout(1200)
def test_every_workflow_starts_from_a_fresh_copy(project, commands, tmp_path: Path) -> None:
    """The steps before each workflow's first training run in a copy of the repository
    with no assets/, corpus/*.spacy, training/ or metrics/, and ../shared beside it:
    every folder a step writes into is made by that step or by the project."""
    for path in ("corpora/conll2003", "corpora/sst2", "corpora/wikipedia", "vectors/glove.6B.50d"):
        if not (SHARED.parent / path).exists():
            pytest.skip(f"{SHARED.parent / path} is absent (research data lives in ../shared, not in the repo)")
    project_dir = copy_project(tmp_path / "project")
    (tmp_path / "shared").symlink_to(SHARED.parent, target_is_directory=True)
    for step in first_steps(project):
        proc = subprocess.run(
            # The 100k-word GloVe file: the same step as the 400k default, in a quarter of the time.
            [sys.executable, "-m", "spacy", "project", "run", step, str(project_dir), "--vars.wiki_words", "20000",
             "--vars.glove_file", "../shared/vectors/glove.6B.50d/glove.6B.50d.100k.txt.gz"],
            cwd=project_dir,
            capture_output=True,
            text=True,
            timeout=600,
        )
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"{step}:\n{output[-4000:]}"
        assert "Traceback" not in output, f"{step}:\n{output[-4000:]}"
        for out in commands[step].get("outputs", []):
            assert (project_dir / out).exists(), f"{step} did not write {out}"
        # Not a terminal: one line per step, no spinner frames.
        assert "\u2819" not in output and "\u2839" not in output, f"{step}: spinner frames in a log"
