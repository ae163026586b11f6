"""The accuracy benchmark (`spacy-encoder benchmark-accuracy`), its throughput logger
and `spacy-encoder tune-threshold`."""
import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Config

from spacy_encoder import accuracy
from spacy_encoder.training_log import TrainingLogError
from spacy_encoder.training_log import THROUGHPUT_LOGGER, read_training_log
from spacy_encoder.loggers import create_throughput_logger_v1

from .conftest import REPO

CONFIGS = REPO / "configs"


def test_plan_runs_equal_budget_is_ours_and_never_duplicated() -> None:
    runs = accuracy.plan_runs(["sst2"], list(accuracy.SYSTEMS), ["default", "equal"])
    names = [r.name for r in runs]
    ours = accuracy.default_steps(Config().from_disk(CONFIGS / "textcat.cfg", interpolate=False))
    # Our default budget is the equal budget: one run, not two.
    assert names.count("sst2-spacy-encoder-default") == 1 and "sst2-spacy-encoder-equal" not in names
    cnn = {r.budget: r.max_steps for r in runs if r.system == "spacy-cnn-efficiency"}
    assert cnn["equal"] == ours and cnn["default"] != ours
    capped = accuracy.plan_runs(["sst2"], list(accuracy.SYSTEMS), ["default", "equal"], cap_steps=5)
    assert [r.max_steps for r in capped] == [5, 5, 5, 5]  # ours from the pretrained encoder: one budget too


@pytest.mark.parametrize("system", list(accuracy.SYSTEMS))
def test_run_config_resolves_with_throughput_logger_and_no_vectors(system: str, tmp_path: Path) -> None:
    run = accuracy.Run(accuracy.TASKS["goemotions"], system, "equal", 7, 3)
    path = accuracy.write_run_config(run, tmp_path / "corpus", None, tmp_path / "run")
    config = Config().from_disk(path)
    assert config["training"]["max_steps"] == 7 and config["training"]["eval_frequency"] == 3
    assert config["paths"]["train"].endswith("goemotions-multilabel/train.spacy")
    assert config["paths"]["vectors"] is None
    assert "include_static_vectors = true" not in path.read_text()
    logger = config["training"]["logger"]
    assert logger["@loggers"] == "spacy-encoder.ThroughputLogger.v1"
    assert logger["path"] == str((tmp_path / "run" / "log.jsonl").resolve())
    # The config's own logger is kept inside, and the whole block resolves.
    assert logger["logger"]["@loggers"].startswith("spacy.ConsoleLogger")
    resolved = spacy.registry.resolve({"logger": logger})["logger"]
    assert callable(resolved)


@pytest.mark.parametrize("system", list(accuracy.SYSTEMS))
@pytest.mark.parametrize("task", ["conll2003", "sst2"])
def test_run_config_with_vectors_gives_every_system_the_same_vectors(system: str, task: str, tmp_path: Path) -> None:
    runs = accuracy.plan_runs([task], [system], ["equal"], vectors="/data/vectors")
    assert runs[0].name == f"{task}-{system}-vectors-{runs[0].budget}"
    path = accuracy.write_run_config(runs[0], tmp_path / "corpus", None, tmp_path / "run")
    config = Config().from_disk(path, interpolate=False)
    assert config["paths"]["vectors"] == "/data/vectors"
    assert config["initialize"]["vectors"] == "${paths.vectors}"
    text = path.read_text()
    if system.startswith("spacy-encoder"):
        # NER with vectors reads rare and unknown words as one id (v3); textcat stays v2.
        expected = "spacy-encoder.TransformerTok2Vec.v3" if task == "conll2003" else "spacy-encoder.TransformerTok2Vec.v2"
        assert config["components"]["tok2vec"]["model"]["@architectures"] == expected
        assert config["components"]["tok2vec"]["model"]["vectors_width"] == 300
        if system == "spacy-encoder-pretrained":
            # NER: one layer from the shipped encoder's bottom one (v2); textcat: all four (v1).
            after_init = config["initialize"]["after_init"]
            if task == "conll2003":
                assert after_init["@callbacks"] == "spacy-encoder.start_from_pretrained.v2" and after_init["layers"] == [0]
                assert config["components"]["tok2vec"]["model"]["depth"] == 1
            else:
                assert after_init["@callbacks"] == "spacy-encoder.start_from_pretrained.v1"
                assert config["components"]["tok2vec"]["model"]["depth"] == 4
    elif "include_static_vectors" in text:  # spaCy's efficiency textcat is bag-of-words: no embed layer
        assert "include_static_vectors = false" not in text and "include_static_vectors = true" in text
    else:
        assert (task, system) == ("sst2", "spacy-cnn-efficiency")


@pytest.mark.parametrize("configs_dir", [None, CONFIGS], ids=["init-config", "configs-dir"])
@pytest.mark.parametrize("system", ["spacy-encoder", "spacy-encoder-pretrained"])
def test_run_config_takes_the_vectors_width_from_the_folder(system: str, configs_dir, tmp_path: Path) -> None:
    # A folder written by `spacy init vectors` from GloVe 6B 50d: our configs' 300 would
    # fail at initialization; the benchmark reads the width the folder records.
    nlp = spacy.blank("en")
    nlp.vocab.set_vector("word", numpy.ones((50,), dtype="float32"))
    nlp.to_disk(tmp_path / "glove50")
    assert accuracy.vectors_width_of(str(tmp_path / "glove50")) == 50
    assert accuracy.vectors_width_of(str(tmp_path / "no-such-folder")) is None
    runs = accuracy.plan_runs(["conll2003"], [system], ["equal"], configs_dir, vectors=str(tmp_path / "glove50"))
    path = accuracy.write_run_config(runs[0], tmp_path / "corpus", configs_dir, tmp_path / "run")
    config = Config().from_disk(path, interpolate=False)
    assert config["components"]["tok2vec"]["model"]["vectors_width"] == 50


def test_throughput_logger_writes_words_and_seconds(tmp_path: Path) -> None:
    seen = []

    def inner(nlp, stdout, stderr):
        return seen.append, lambda: seen.append("finalized")

    setup = create_throughput_logger_v1(str(tmp_path / "sub" / "log.jsonl"), inner)
    log_step, finalize = setup(spacy.blank("en"), sys.stdout, sys.stderr)
    info = {"epoch": 0, "step": 200, "words": 5000, "seconds": 1, "score": 0.5, "other_scores": {"ents_f": 0.5, "ents_per_type": {}}}
    log_step(None)  # a step without evaluation: passed on, not written
    log_step(info)
    finalize()
    assert seen == [None, info, "finalized"]
    (record,) = [json.loads(line) for line in (tmp_path / "sub" / "log.jsonl").read_text().splitlines()]
    assert record["step"] == 200 and record["words"] == 5000 and record["scores"] == {"ents_f": 0.5}
    assert 0.0 <= record["seconds"] < 60


def test_throughput_log_reads_as_the_benchmark_needs(tmp_path: Path) -> None:
    """The benchmark reads its log with the one training-log reader: a run that failed
    before its first evaluation has no records, not an error; records need no losses."""
    read = partial(read_training_log, logger=THROUGHPUT_LOGGER, missing_ok=True)
    log = tmp_path / "log.jsonl"
    assert read(log) == [] and read(tmp_path) == []
    log.write_text("", encoding="utf8")
    assert read(log) == []
    record = {"epoch": 0, "step": 5, "words": 90, "seconds": 1.5, "score": 0.25, "scores": {"ents_f": 25.0}}
    log.write_text(json.dumps(record) + '\n{"epoch": 0, "st', encoding="utf8")  # a run killed mid-line
    assert read(log) == [record] and read(tmp_path) == [record]
    log.write_text('{"step": 5}\n' + json.dumps(record) + "\n", encoding="utf8")
    with pytest.raises(TrainingLogError, match="has no step/score; expected spacy-encoder.ThroughputLogger.v1 output"):
        read(log)
    with pytest.raises(TrainingLogError, match="has no step/losses/scores; expected spacy.ConsoleLogger.v3 output"):
        read_training_log(tmp_path / "log.jsonl")


def _multilabel_examples(nlp, scores_and_gold):
    examples = []
    for i, (pred, gold) in enumerate(scores_and_gold):
        predicted = Doc(nlp.vocab, words=[f"w{i}"])
        predicted.cats = pred
        reference = Doc(nlp.vocab, words=[f"w{i}"])
        reference.cats = gold
        examples.append(Example(predicted, reference))
    return examples


def test_best_threshold_separates_scores_and_prefers_nearest_half() -> None:
    nlp = spacy.blank("en")
    # Positives score 0.3, negatives 0.1: every threshold in (0.1, 0.3] is perfect;
    # 0.3 is the one nearest 0.5. At 0.5 nothing is predicted.
    data = [({"A": 0.3, "B": 0.1}, {"A": 1.0, "B": 0.0}), ({"A": 0.1, "B": 0.3}, {"A": 0.0, "B": 1.0})] * 3
    examples = _multilabel_examples(nlp, data)
    threshold, macro = accuracy.best_threshold(examples, ["A", "B"])
    assert threshold == 0.3 and macro == pytest.approx(1.0)
    assert accuracy.score_multilabel(examples, ["A", "B"], 0.5)["macro_f"] == 0.0


def test_exclusive_accuracy() -> None:
    nlp = spacy.blank("en")
    data = [
        ({"POS": 0.9, "NEG": 0.1}, {"POS": 1.0, "NEG": 0.0}),
        ({"POS": 0.6, "NEG": 0.4}, {"POS": 0.0, "NEG": 1.0}),
        ({}, {"POS": 1.0, "NEG": 0.0}),  # no prediction counts as wrong
        ({"POS": 0.2, "NEG": 0.8}, {"POS": 0.0, "NEG": 1.0}),
    ]
    assert accuracy.exclusive_accuracy(_multilabel_examples(nlp, data)) == 0.5


def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "spacy_encoder.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_benchmark_end_to_end_then_tune_threshold(tmp_path: Path) -> None:
    """Two tiny trainings (ours and spaCy's efficiency CNN) on a GoEmotions slice from
    the repository: results, table and commands are written; a rerun reuses them; the
    threshold chosen on dev is saved into the pipeline."""
    corpus = tmp_path / "corpus" / "goemotions-multilabel"
    for split, limit in (("train", 40), ("dev", 30), ("test", 30)):
        done = _run_cli(
            "convert", "goemotions", str(REPO / "corpus" / "goemotions" / f"{split}.tsv"), str(corpus / f"{split}.spacy"),
            "--labels", str(REPO / "corpus" / "goemotions" / "emotions.txt"), "--view", "multilabel", "--limit", str(limit),
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
    args = ("bench", "accuracy", "--task", "goemotions", "--system", "spacy-encoder",
            "--system", "spacy-cnn-efficiency", "--budget", "equal", "--cap-steps", "2", "--eval-frequency", "1")
    done = _run_cli(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "metrics" / "accuracy" / "accuracy.json").read_text())
    runs = {r["run"]: r for r in summary["runs"]}
    assert set(runs) == {"goemotions-spacy-encoder-equal", "goemotions-spacy-cnn-efficiency-equal"}
    for r in runs.values():
        assert r["steps"] == 2 and r["words_per_second"] > 0
        assert r["command"].startswith("python -m spacy train training/accuracy/")
        assert 0.05 <= r["eval"]["threshold"] <= 0.95 and 0.0 <= r["eval"]["macro_f"] <= 1.0
    table = (tmp_path / "metrics" / "accuracy" / "accuracy.md").read_text()
    assert "smoke test, not a result" in table and "| spacy-cnn-efficiency | equal |" in table
    again = _run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.count("finished before, reusing") == 2

    model = tmp_path / "training" / "accuracy" / "goemotions-spacy-encoder-equal" / "output" / "model-best"
    tuned = tmp_path / "tuned"
    done = _run_cli("bench", "threshold", str(model), str(corpus / "dev.spacy"), "--output", str(tuned), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    chosen = runs["goemotions-spacy-encoder-equal"]["eval"]["threshold"]
    nlp = spacy.load(tuned)
    # approx: srsly's JSON reader gives 0.30000000000000004 for a stored 0.3.
    assert nlp.get_pipe("textcat_multilabel").cfg["threshold"] == pytest.approx(chosen)
    assert Config().from_disk(tuned / "config.cfg")["components"]["textcat_multilabel"]["threshold"] == chosen


def test_benchmark_names_missing_corpora(tmp_path: Path) -> None:
    done = _run_cli("bench", "accuracy", "--configs-dir", str(CONFIGS), "--task", "conll2003", cwd=tmp_path)
    assert done.returncode == 1
    assert "Missing corpora" in done.stdout and "conll2003/train.spacy" in done.stdout


def test_benchmark_rejects_unknown_task(tmp_path: Path) -> None:
    done = _run_cli("bench", "accuracy", "--task", "imdb", cwd=tmp_path)
    assert done.returncode == 1 and "Unknown --task imdb" in done.stdout


def test_tune_threshold_refuses_pipeline_without_component(tmp_path: Path) -> None:
    spacy.blank("en").to_disk(tmp_path / "blank")
    dev = tmp_path / "dev.spacy"
    from spacy.tokens import DocBin

    DocBin(docs=[spacy.blank("en")("hello")]).to_disk(dev)
    done = _run_cli("bench", "threshold", str(tmp_path / "blank"), str(dev), cwd=tmp_path)
    assert done.returncode == 1 and "No component 'textcat_multilabel'" in done.stdout
