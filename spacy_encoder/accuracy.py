"""The accuracy benchmark: our configs against spaCy's default CNN configs, trained on
the same machine and data, evaluated the same way.

Every run is one `python -m spacy train` of a config written to
`<work_dir>/<run>/config.cfg`, so the command that reproduces it is exactly the one
recorded. The only changes made to a config are the paths, the step budget and the
logger: `spacy-encoder.ThroughputLogger.v1` wraps the config's own logger to record
words and seconds (spaCy's loggers do not), which gives words/sec.

Each finished run leaves `<work_dir>/<run>/result.json`; a rerun skips finished runs,
so an interrupted benchmark loses at most the run it was in.
"""
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from thinc.api import Config

from .training_log import LOG_FILE_NAME, THROUGHPUT_LOGGER, read_training_log

THRESHOLDS = [round(0.05 * i, 2) for i in range(1, 20)]


@dataclass(frozen=True)
class Task:
    name: str
    component: str  # the spaCy factory: ner, textcat, textcat_multilabel
    our_config: str  # <our_config>.cfg in a --configs-dir
    corpus: str  # corpus/<corpus>/{train,dev,test}.spacy
    eval_split: str  # "test", or "dev" where the test set has no labels
    title: str


TASKS: Dict[str, Task] = {
    "conll2003": Task("conll2003", "ner", "ner", "conll2003", "test", "CoNLL-2003 NER, test F1"),
    "sst2": Task("sst2", "textcat", "textcat", "sst2", "dev", "SST-2, dev accuracy"),
    "goemotions": Task(
        "goemotions", "textcat_multilabel", "textcat_multilabel", "goemotions-multilabel", "test", "GoEmotions, test macro-F1"
    ),
}
# system -> spaCy `init config --optimize` value (None: our own config)
SYSTEMS: Dict[str, Optional[str]] = {
    "spacy-encoder": None,
    # Our configs started from the shipped pretrained encoder (`*_pretrained.cfg`).
    "spacy-encoder-pretrained": None,
    "spacy-cnn-efficiency": "efficiency",
    "spacy-cnn-accuracy": "accuracy",
}


@dataclass(frozen=True)
class Run:
    task: Task
    system: str
    budget: str  # "default" or "equal"
    max_steps: int
    eval_frequency: Optional[int]
    vectors: Optional[str] = None  # the same static vectors for every system, or None

    @property
    def name(self) -> str:
        with_vectors = "-vectors" if self.vectors else ""
        return f"{self.task.name}-{self.system}{with_vectors}-{self.budget}"


def base_config(task: Task, system: str, configs_dir: Optional[Path] = None, vectors: Optional[str] = None) -> Config:
    """The config a user of `system` would start from, not interpolated: ours as
    `spacy-encoder init config` writes it, or read from `configs_dir` where given
    (`<config>[_vectors][_pretrained].cfg`). With `vectors` (a folder or package name),
    every system gets those static vectors: ours with their width, spaCy's configs with
    `include_static_vectors = true`."""
    optimize = SYSTEMS[system]
    if optimize is None:
        from .init_config import VECTORS_WIDTH, make_config

        pretrained = system == "spacy-encoder-pretrained"
        # The width the vectors' meta records (GloVe 6B 50d: 50), else en_core_web_md's.
        width = vectors_width_of(vectors) if vectors else None
        if configs_dir is None:
            config = make_config(
                [task.component],
                optimize="accuracy" if pretrained else "efficiency",
                vectors_width=(width or VECTORS_WIDTH) if vectors else 0,
            )
        else:
            name = task.our_config + ("_vectors" if vectors else "") + ("_pretrained" if pretrained else "")
            config = Config().from_disk(configs_dir / f"{name}.cfg", interpolate=False)
            if width is not None:
                config["components"]["tok2vec"]["model"]["vectors_width"] = width
    else:
        from spacy.cli.init_config import init_config

        # The config `python -m spacy init config -p <component> -o <optimize>` writes (CPU).
        config = init_config(lang="en", pipeline=[task.component], optimize=optimize, gpu=False, silent=True)
        # Without `vectors`, no static vectors for anyone: the accuracy config names
        # en_core_web_lg, a download.
        _set_static_vectors(config, bool(vectors))
    config["paths"]["vectors"] = vectors
    return config


def vectors_width_of(vectors: str) -> Optional[int]:
    """The width the pipeline at `vectors` (a folder, or an installed package's name)
    records in its meta.json, or None where there is no such meta to read."""
    path = Path(vectors)
    if not path.exists():
        from spacy.util import get_package_path, is_package

        if not is_package(vectors):
            return None
        path = get_package_path(vectors)
    meta = path / "meta.json"
    if not meta.exists():
        return None
    width = json.loads(meta.read_text(encoding="utf8")).get("vectors", {}).get("width")
    return int(width) if width else None


def _set_static_vectors(section: Dict[str, Any], include: bool) -> None:
    for key, value in section.items():
        if key == "include_static_vectors":
            section[key] = include
        elif isinstance(value, dict):
            _set_static_vectors(value, include)


def default_steps(config: Config) -> int:
    return int(config["training"]["max_steps"])


def plan_runs(
    tasks: Sequence[str],
    systems: Sequence[str],
    budgets: Sequence[str],
    configs_dir: Optional[Path] = None,
    equal_steps: Optional[int] = None,
    cap_steps: int = 0,
    eval_frequency: Optional[int] = None,
    vectors: Optional[str] = None,
) -> List[Run]:
    """One run per task, system and budget. `equal` gives every system our config's
    step budget (or `equal_steps`); a run whose budget equals another of the same
    system is planned once, as `default`. `cap_steps` (smoke tests) caps every budget.
    `vectors`: the static vectors every system gets (see `base_config`)."""
    runs: List[Run] = []
    for task_name in tasks:
        task = TASKS[task_name]
        ours = equal_steps or default_steps(base_config(task, "spacy-encoder", configs_dir, vectors))
        for system in systems:
            default = default_steps(base_config(task, system, configs_dir, vectors))
            steps = {"default": default, "equal": ours}
            seen = set()
            for budget in budgets:
                n = steps[budget]
                if cap_steps:
                    n = min(n, cap_steps)
                if n in seen:
                    continue
                seen.add(n)
                runs.append(Run(task, system, budget, n, eval_frequency, vectors))
    return runs


def write_run_config(run: Run, corpus_dir: Path, configs_dir: Optional[Path], run_dir: Path) -> Path:
    config = base_config(run.task, run.system, configs_dir, run.vectors)
    corpus = corpus_dir / run.task.corpus
    config["paths"]["train"] = str((corpus / "train.spacy").resolve())
    config["paths"]["dev"] = str((corpus / "dev.spacy").resolve())
    config["training"]["max_steps"] = run.max_steps
    if run.eval_frequency:
        config["training"]["eval_frequency"] = run.eval_frequency
    inner = dict(config["training"]["logger"])
    if "output_file" in inner:
        inner["output_file"] = None  # the throughput log replaces it
    config["training"]["logger"] = {
        "@loggers": "spacy-encoder.ThroughputLogger.v1",
        "path": str((run_dir / LOG_FILE_NAME).resolve()),
        "logger": inner,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "config.cfg"
    config.to_disk(path)
    return path


def train_command(config_path: Path, output: Path, gpu_id: int) -> List[str]:
    """The command as recorded (`python` is the interpreter running the benchmark)."""
    return ["python", "-m", "spacy", "train", str(config_path), "--output", str(output), "--gpu-id", str(gpu_id)]


def evaluate_pipeline(model_dir: Path, task: Task, corpus_dir: Path, gpu_id: int = -1) -> Dict[str, Any]:
    """Scores of `model_dir` on the task's evaluation split, computed as `spacy evaluate`
    does. Multi-label: the threshold is chosen on dev (best macro-F1) and applied to the
    evaluation split; scores at spaCy's default 0.5 are kept beside them."""
    import spacy
    from spacy.training import Corpus

    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    nlp = spacy.load(model_dir)
    corpus = corpus_dir / task.corpus
    examples = list(Corpus(corpus / f"{task.eval_split}.spacy")(nlp))
    scores = annotate_and_score(nlp, examples)
    result: Dict[str, Any] = {"eval_split": task.eval_split, "n_examples": len(examples)}
    if task.component == "ner":
        result.update(f1=scores["ents_f"], precision=scores["ents_p"], recall=scores["ents_r"])
        result["per_type"] = {k: v["f"] for k, v in (scores.get("ents_per_type") or {}).items()}
        result["headline"] = scores["ents_f"]
    elif task.component == "textcat":
        result["accuracy"] = exclusive_accuracy(examples)
        result["macro_f"] = scores["cats_macro_f"]
        result["headline"] = result["accuracy"]
    else:
        dev_examples = list(Corpus(corpus / "dev.spacy")(nlp))
        annotate_and_score(nlp, dev_examples)
        threshold, dev_macro = best_threshold(dev_examples, nlp.get_pipe(task.component).labels)
        labels = nlp.get_pipe(task.component).labels
        at_best = score_multilabel(examples, labels, threshold)
        at_half = score_multilabel(examples, labels, 0.5)
        result.update(
            threshold=threshold,
            dev_macro_f_at_threshold=dev_macro,
            macro_f=at_best["macro_f"],
            micro_f=at_best["micro_f"],
            macro_f_at_0_5=at_half["macro_f"],
            micro_f_at_0_5=at_half["micro_f"],
            macro_auc=scores.get("cats_macro_auc"),
        )
        result["headline"] = at_best["macro_f"]
    return result


def annotate_and_score(nlp: Any, examples: Sequence[Any]) -> Dict[str, Any]:
    """Run the pipeline over the examples' predicted docs, keep the annotated docs on
    the examples, and score them as `nlp.evaluate` does (which annotates copies and
    keeps nothing, so its predictions cannot be rescored at another threshold)."""
    from spacy.scorer import Scorer

    for eg, doc in zip(examples, nlp.pipe(eg.predicted for eg in examples)):
        eg.predicted = doc
    return Scorer(nlp=nlp).score(examples)


def exclusive_accuracy(examples: Sequence[Any]) -> float:
    """Share of examples whose highest-scored label is the gold label."""
    correct = 0
    for eg in examples:
        gold, pred = eg.reference.cats, eg.predicted.cats
        if gold and pred and max(pred, key=pred.get) == max(gold, key=gold.get):
            correct += 1
    return correct / max(1, len(examples))


def score_multilabel(examples: Sequence[Any], labels: Sequence[str], threshold: float) -> Dict[str, float]:
    from spacy.scorer import Scorer

    scores = Scorer.score_cats(examples, "cats", labels=labels, multi_label=True, threshold=threshold)
    return {"macro_f": scores["cats_macro_f"], "micro_f": scores["cats_micro_f"]}


def best_threshold(dev_examples: Sequence[Any], labels: Sequence[str], grid: Sequence[float] = THRESHOLDS) -> "tuple[float, float]":
    """The threshold on `grid` with the best macro-F1 on annotated dev examples (ties: the
    threshold nearer 0.5)."""
    scored = [(score_multilabel(dev_examples, labels, t)["macro_f"], -abs(t - 0.5), t) for t in grid]
    macro, _, threshold = max(scored)
    return threshold, macro


def run_one(
    run: Run, corpus_dir: Path, configs_dir: Optional[Path], work_dir: Path, gpu_id: int, log: Callable[[str], None]
) -> Dict[str, Any]:
    run_dir = work_dir / run.name
    result_path = run_dir / "result.json"
    if result_path.exists():
        log(f"{run.name}: finished before, reusing {result_path}")
        return json.loads(result_path.read_text(encoding="utf8"))
    config_path = write_run_config(run, corpus_dir, configs_dir, run_dir)
    output = run_dir / "output"
    command = train_command(config_path, output, gpu_id)
    log(f"{run.name}: {run.max_steps:,} steps at most: {shlex.join(command)}")
    start = time.monotonic()
    with (run_dir / "train.log").open("w", encoding="utf8") as train_log:
        completed = subprocess.run([sys.executable] + command[1:], stdout=train_log, stderr=subprocess.STDOUT)
    wall = time.monotonic() - start
    records = read_training_log(run_dir / LOG_FILE_NAME, logger=THROUGHPUT_LOGGER, missing_ok=True)
    result: Dict[str, Any] = {
        "run": run.name,
        "task": run.task.name,
        "system": run.system,
        "budget": run.budget,
        "max_steps": run.max_steps,
        "vectors": run.vectors,
        "command": shlex.join(command),
        "train_wall_seconds": round(wall, 1),
    }
    if completed.returncode != 0 or not (output / "model-best").exists():
        result["error"] = f"spacy train exited with {completed.returncode}; see {run_dir / 'train.log'}"
        return result  # not saved: the next run of the benchmark retries it
    last = records[-1] if records else {}
    best = max(records, key=lambda r: r["score"]) if records else {}
    result.update(
        steps=last.get("step"),
        best_step=best.get("step"),
        dev_score=best.get("score"),
        words=last.get("words"),
        words_per_second=(last["words"] / last["seconds"]) if last.get("seconds") else None,
    )
    result["eval"] = evaluate_pipeline(output / "model-best", run.task, corpus_dir, gpu_id)
    result_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf8")
    return result


def markdown(results: List[Dict[str, Any]], header: str) -> str:
    lines = [header, ""]
    for task in TASKS.values():
        rows = [r for r in results if r["task"] == task.name]
        if not rows:
            continue
        lines += [f"**{task.title}**", ""]
        if task.component == "textcat_multilabel":
            lines += [
                "| system | budget | steps (best) | threshold (dev) | macro-F1 | micro-F1 | macro-F1 @0.5 | train min | words/s |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
        else:
            lines += ["| system | budget | steps (best) | dev score | headline | train min | words/s |", "|---|---|---|---|---|---|---|"]
        for r in rows:
            if "error" in r:
                lines.append(f"| {r['system']} | {r['budget']} | failed: {r['error']} |")
                continue
            e = r["eval"]
            system = f"{r['system']} + vectors" if r.get("vectors") else r["system"]
            steps = f"{r['steps']:,} ({r['best_step']:,})"
            wps = f"{r['words_per_second']:,.0f}" if r.get("words_per_second") else "–"
            minutes = f"{r['train_wall_seconds'] / 60:.1f}"
            if task.component == "textcat_multilabel":
                lines.append(
                    f"| {system} | {r['budget']} | {steps} | {e['threshold']:.2f} | {e['macro_f']:.3f} | "
                    f"{e['micro_f']:.3f} | {e['macro_f_at_0_5']:.3f} | {minutes} | {wps} |"
                )
            else:
                lines.append(
                    f"| {system} | {r['budget']} | {steps} | {100 * r['dev_score']:.1f} | {100 * e['headline']:.1f} | {minutes} | {wps} |"
                )
        lines.append("")
    lines += ["Commands (each run's config is in its folder):", ""]
    lines += [f"- `{r['run']}`: `{r['command']}`" for r in results]
    return "\n".join(lines) + "\n"
