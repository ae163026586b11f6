"""`spacy-encoder bench accuracy` and `spacy-encoder bench threshold`."""
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import typer
from wasabi import msg

from . import group, load_pipeline


@group("bench").command("accuracy")
def benchmark_accuracy_command(
    corpus_dir: Path = typer.Option(Path("corpus"), "--corpus-dir", help="Folder with conll2003/, sst2/, goemotions-multilabel/ .spacy files (project.yml's convert-* commands)"),
    configs_dir: Optional[Path] = typer.Option(None, "--configs-dir", help="Read our configs from this folder (ner.cfg, textcat.cfg, textcat_multilabel.cfg and their _vectors, _pretrained variants); default: as `init config` writes them"),
    work_dir: Path = typer.Option(Path("training/accuracy"), "--work-dir", help="One folder per run: config, logs, model, result.json"),
    output_dir: Path = typer.Option(Path("metrics/accuracy"), "--output-dir", "-o", help="Where accuracy.json and accuracy.md go"),
    tasks: List[str] = typer.Option(["conll2003", "sst2", "goemotions"], "--task", help="conll2003, sst2, goemotions (repeatable)"),
    systems: List[str] = typer.Option(
        ["spacy-encoder", "spacy-cnn-efficiency", "spacy-cnn-accuracy"], "--system", help="spacy-encoder, spacy-encoder-pretrained (from the shipped encoder), spacy-cnn-efficiency, spacy-cnn-accuracy (repeatable)"
    ),
    budgets: List[str] = typer.Option(["default", "equal"], "--budget", help="default (each config's max_steps) and/or equal (our step budget for all)"),
    equal_steps: int = typer.Option(0, "--equal-steps", help="Steps of the equal budget (0: our config's max_steps)"),
    cap_steps: int = typer.Option(0, "--cap-steps", help="Cap every budget (smoke tests; 0: no cap)"),
    eval_frequency: int = typer.Option(0, "--eval-frequency", help="Override every config's eval_frequency (0: keep)"),
    gpu_id: int = typer.Option(-1, "--gpu-id", help="GPU for training and evaluation (-1: CPU)"),
    vectors: str = typer.Option("", "--vectors", help="Static vectors for every system (a folder or package name, as --paths.vectors takes): our *_vectors.cfg configs, spaCy's with include_static_vectors = true"),
) -> None:
    """Train our configs and spaCy's default CNN configs (efficiency and accuracy) on
    the same data and machine, with no static vectors or (`--vectors`) the same ones for
    every system, evaluate them alike, and write a markdown table and a JSON file with
    scores, steps, wall time, words/sec and the commands.

    CoNLL-2003 is scored on test, SST-2 on dev (its test set has no labels), GoEmotions
    on test with the multi-label threshold chosen on dev. Finished runs are kept and
    skipped when the command is run again."""
    from .. import accuracy

    for name, allowed, given in (("--task", accuracy.TASKS, tasks), ("--system", accuracy.SYSTEMS, systems), ("--budget", ("default", "equal"), budgets)):
        unknown = [g for g in given if g not in allowed]
        if unknown:
            msg.fail(f"Unknown {name} {', '.join(unknown)}. Expected one of: {', '.join(allowed)}.", exits=1)
    missing = [
        str(corpus_dir / accuracy.TASKS[t].corpus / f"{split}.spacy")
        for t in tasks
        for split in ("train", "dev", accuracy.TASKS[t].eval_split)
        if not (corpus_dir / accuracy.TASKS[t].corpus / f"{split}.spacy").exists()
    ]
    if missing:
        msg.fail(
            "Missing corpora: " + ", ".join(sorted(set(missing))),
            "Convert them first: `python -m spacy project run benchmark-accuracy .` does (it copies "
            "CoNLL-2003 and SST-2 from ../shared/corpora), or run the project's convert-* commands.",
            exits=1,
        )
    if vectors and not Path(vectors).exists() and not _is_package(vectors):
        msg.fail(f"--vectors {vectors}: no such folder or installed package.", exits=1)
    if vectors and Path(vectors).exists():
        vectors = str(Path(vectors).resolve())  # the run configs live in --work-dir
    runs = accuracy.plan_runs(
        tasks, systems, budgets, configs_dir, equal_steps or None, cap_steps, eval_frequency or None, vectors or None
    )
    msg.info(f"{len(runs)} runs: " + ", ".join(f"{r.name} ({r.max_steps:,} steps)" for r in runs))
    results: List[Dict[str, Any]] = []
    header = _header(cap_steps)
    output_dir.mkdir(parents=True, exist_ok=True)
    for i, run in enumerate(runs, start=1):
        msg.divider(f"[{i}/{len(runs)}] {run.name}")
        result = accuracy.run_one(run, corpus_dir, configs_dir, work_dir, gpu_id, msg.text)
        if "error" in result:
            msg.fail(f"{run.name}: {result['error']}")
        else:
            e = result["eval"]
            msg.good(
                f"{run.name}: {e['eval_split']} {100 * e['headline']:.2f} (best dev {100 * result['dev_score']:.2f} at step "
                f"{result['best_step']:,}), {result['train_wall_seconds'] / 60:.1f} min"
            )
        results.append(result)
        # Written after every run, so the table so far survives an interruption.
        summary = {"machine": _machine(), "cap_steps": cap_steps, "runs": results}
        (output_dir / "accuracy.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf8")
        (output_dir / "accuracy.md").write_text(accuracy.markdown(results, header), encoding="utf8")
    print()
    print((output_dir / "accuracy.md").read_text(encoding="utf8"))
    msg.good(f"Wrote {output_dir / 'accuracy.json'} and {output_dir / 'accuracy.md'}")
    failed = [r["run"] for r in results if "error" in r]
    if failed:
        msg.fail(f"{len(failed)} runs failed: {', '.join(failed)} (rerun to retry only these)", exits=1)


def _is_package(name: str) -> bool:
    import spacy

    return spacy.util.is_package(name)


def _machine() -> Dict[str, Any]:
    import spacy
    import torch

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "spacy": spacy.__version__,
        "torch_threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d"),
    }


def _header(cap_steps: int) -> str:
    m = _machine()
    note = f" Budgets capped at {cap_steps:,} steps (smoke test, not a result)." if cap_steps else ""
    return (
        f"Accuracy benchmark, {m['date']}: {m['cpus']} CPUs, torch {m['torch']}, spaCy {m['spacy']}. "
        "Scores of model-best (the best dev checkpoint). SST-2 is scored on dev, so its dev score and headline "
        "share data; GoEmotions uses the threshold with the best dev macro-F1. Train minutes include the "
        f"evaluations during training; words/s = words seen / seconds.{note}"
    )


@group("bench").command("threshold")
def tune_threshold_command(
    model: Path = typer.Argument(..., metavar="MODEL", help="Trained pipeline folder with a textcat_multilabel component."),
    dev_path: Path = typer.Argument(..., metavar="DEV", help="Annotated dev .spacy file (never the test set)."),
    output: Path = typer.Option(None, "--output", "-o", help="Write the tuned pipeline here (default: update MODEL in place)"),
    component: str = typer.Option("textcat_multilabel", "--component", "-c", help="The multi-label text classifier's name"),
) -> None:
    """Choose the decision threshold of a multi-label text classifier on dev (the one
    with the best macro-F1, from 0.05 to 0.95), and save it in the pipeline, where
    `spacy evaluate` and `doc.cats` consumers that read the component's threshold use it."""
    from spacy.training import Corpus

    from ..accuracy import annotate_and_score, best_threshold, score_multilabel

    if not dev_path.exists():
        msg.fail(f"{dev_path} not found.", exits=1)
    nlp = load_pipeline(model)
    if component not in nlp.pipe_names:
        msg.fail(f"No component '{component}' in {model} (it has: {', '.join(nlp.pipe_names)}).", exits=1)
    pipe = nlp.get_pipe(component)
    if "threshold" not in getattr(pipe, "cfg", {}):
        msg.fail(f"'{component}' has no threshold setting (is it a textcat_multilabel?).", exits=1)
    examples = list(Corpus(dev_path)(nlp))
    if not examples:
        msg.fail(f"{dev_path} holds no examples.", exits=1)
    annotate_and_score(nlp, examples)
    old = float(pipe.cfg["threshold"])
    threshold, macro = best_threshold(examples, pipe.labels)
    before = score_multilabel(examples, pipe.labels, old)["macro_f"]
    pipe.cfg["threshold"] = threshold
    target = output or model
    nlp.to_disk(target)
    # config.cfg too, so that the config and the component agree.
    from thinc.api import Config

    config = Config().from_disk(target / "config.cfg", interpolate=False)
    config["components"][component]["threshold"] = threshold
    config.to_disk(target / "config.cfg")
    msg.good(f"Threshold {old:.2f} -> {threshold:.2f}: dev macro-F1 {before:.3f} -> {macro:.3f}. Saved to {target}")
