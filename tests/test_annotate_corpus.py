"""`annotate-corpus`: the output equals `nlp.pipe`'s for every id, whatever the engine,
the format, a crash or a resume; bad input fails before anything is written.

The local engine runs everywhere. The Ray tests need the `ray` extra and skip without
it; they run a real cluster of a head and a worker node, with one CPU and a 200 MB
object store each, shut down in the fixture whatever happens. The fault tests (a
worker killed, a node removed, the driver killed) are `slow`.
"""
from __future__ import annotations

import importlib.util
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import spacy
from spacy.training import Example
from typer.testing import CliRunner

from spacy_encoder import annotate as ac
from spacy_encoder.cli import app

from .test_training import NER_DATA, nlp_from_config

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason='Ray is not installed (pip install "spacy-encoder[ray]")')
TINY = dict(width=32, depth=1, n_heads=2, ff_width=64, max_length=32, window_stride=24)
WORDS = "I like London and Berlin . Angela Merkel visited Paris Apple hired Tim Cook nothing here".split()
CATS = [{"POS": 1.0, "NEG": 0.0}, {"POS": 0.0, "NEG": 1.0}]
OBJECT_STORE = 200 * 1024 * 1024
# One token for every cluster of this test process: Ray caches the first it reads.
RAY_TOKEN = secrets.token_hex(16)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny NER + textcat pipeline, trained a little so that it finds entities."""
    nlp = nlp_from_config("ner", **TINY)
    nlp.add_pipe("textcat")
    exs = [Example.from_dict(nlp.make_doc(t), {"entities": e, "cats": CATS[i % 2]}) for i, (t, e) in enumerate(NER_DATA)]
    optimizer = nlp.initialize(lambda: exs)
    for _ in range(30):
        nlp.update(exs, sgd=optimizer)
    path = tmp_path_factory.mktemp("model") / "ner_textcat"
    nlp.to_disk(path)
    return path


def make_records(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    # Some empty texts: a doc of no tokens is a doc too.
    return [{"id": f"doc-{i}", "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 12)))} for i in range(n)]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_parquet(path: Path, records: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(records), path)
    return path


def reference(model_dir: Path, records: list[dict]) -> dict[str, dict]:
    nlp = spacy.load(model_dir)
    docs = nlp.pipe([r["text"] for r in records], batch_size=16)
    return {
        r["id"]: {"entities": [(e.start_char, e.end_char, e.label_) for e in doc.ents], "cats": dict(doc.cats)}
        for r, doc in zip(records, docs)
    }


def assert_equal_output(got: dict[str, dict], expected: dict[str, dict]) -> None:
    assert sorted(got) == sorted(expected)
    n_ents = 0
    for id_, row in expected.items():
        assert got[id_]["entities"] == row["entities"], id_
        assert got[id_]["cats"].keys() == row["cats"].keys(), id_
        for label, score in row["cats"].items():
            assert got[id_]["cats"][label] == pytest.approx(score, abs=1e-5), (id_, label)
        n_ents += len(row["entities"])
    assert n_ents > 0, "the reference finds no entities: the test would prove nothing"


def assert_unique_ids(output: Path, fmt: str = "parquet") -> list[str]:
    ids = ac.read_output_ids(output, fmt)
    assert len(ids) == len(set(ids)), "an id was written twice"
    return ids


# --- the local engine ---------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fmt", ac.FORMATS)
def test_annotate_corpus_local_equals_nlp_pipe(model_dir, tmp_path, fmt):
    records = make_records(300)
    folder = tmp_path / "in"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", records[:170])
    write_jsonl(folder / "b.jsonl", records[170:])
    output = tmp_path / "out"
    summary = ac.annotate_corpus(str(model_dir), folder, output, fmt=fmt, shard_size=100, batch_size=16)
    assert summary.docs == 300 and summary.failures == 0 and summary.words > 0
    assert not ac.staging_path(output).exists()
    assert json.loads((output / ac.SUCCESS_FILE).read_text())["docs"] == 300
    assert len(list(output.glob(f"part-*{ac.EXTENSIONS[fmt]}"))) == 3
    assert_unique_ids(output, fmt)
    assert_equal_output(ac.read_output(output, fmt), reference(model_dir, records))


@pytest.mark.timeout(120)
def test_annotate_corpus_parquet_input_with_doc_bytes(model_dir, tmp_path):
    import pyarrow.parquet as pq
    from spacy.tokens import Doc

    records = make_records(80, seed=1)
    output = tmp_path / "out"
    ac.annotate_corpus(str(model_dir), write_parquet(tmp_path / "in.parquet", records), output, doc_bytes=True)
    table = pq.read_table(output)
    assert table.column_names == ["id", "entities", "cats", "doc_bytes"]
    assert str(table.schema.field("cats").type).startswith("map<string, double")
    expected = reference(model_dir, records)
    nlp = spacy.load(model_dir)
    for id_, data in zip(table.column("id").to_pylist(), table.column("doc_bytes").to_pylist()):
        doc = Doc(nlp.vocab).from_bytes(data)
        assert [(e.start_char, e.end_char, e.label_) for e in doc.ents] == expected[id_]["entities"]
    assert_equal_output(ac.read_output(output), expected)


def test_annotate_corpus_integer_ids_become_strings(model_dir, tmp_path):
    records = [{"id": n, "text": r["text"]} for n, r in enumerate(make_records(20))]
    output = tmp_path / "out"
    ac.annotate_corpus(str(model_dir), write_jsonl(tmp_path / "in.jsonl", records), output, fmt="jsonl")
    assert sorted(ac.read_output(output, "jsonl"), key=int) == [str(n) for n in range(20)]


def test_annotator_is_a_map_batches_callable(model_dir):
    """The class users give to their own Dataset.map_batches: a dict of numpy columns in,
    a pyarrow Table out, one row per record, in order, skip_ids dropped."""
    import numpy

    records = make_records(10)
    annotator = ac.CorpusAnnotator(str(model_dir), skip_ids={"doc-3"})
    table = annotator({"id": numpy.array([r["id"] for r in records]), "text": numpy.array([r["text"] for r in records], dtype=object)})
    ids = [r["id"] for r in records if r["id"] != "doc-3"]
    assert table.column("id").to_pylist() == ids
    assert table.column("error").null_count == len(ids)
    expected = reference(model_dir, records)
    got = [[(e["start_char"], e["end_char"], e["label"]) for e in row] for row in table.column("entities").to_pylist()]
    assert got == [expected[i]["entities"] for i in ids]


BAD_INPUTS = {
    "missing field": ('{"id": "a", "text": "fine"}\n{"id": "b", "body": "no text field"}\n', "no field 'text'"),
    "non-text value": ('{"id": "a", "text": 12}\n', "is a int (12), not text"),
    "null text": ('{"id": "a", "text": null}\n', "is missing (null)"),
    "missing id": ('{"id": null, "text": "x"}\n', "the id field 'id' is missing (null)"),
    "duplicate id": ('{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n', "duplicate id 'a'"),
    "mixed id kinds": ('{"id": "a", "text": "x"}\n{"id": 2, "text": "y"}\n', "use one kind of id"),
    "not json": ('{"id": "a", "text": "x"}\nnot json\n', "in.jsonl:2: not a JSON object"),
    "empty file": ("", "empty, no records"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_annotate_corpus_bad_input_fails_before_writing(model_dir, tmp_path, case):
    content, message = BAD_INPUTS[case]
    path = tmp_path / "in.jsonl"
    path.write_text(content)
    output = tmp_path / "out"
    with pytest.raises(ac.AnnotateError) as err:
        ac.annotate_corpus(str(model_dir), path, output)
    assert message in str(err.value)
    assert not output.exists() and not ac.staging_path(output).exists()


@pytest.mark.parametrize("case", ["unreadable parquet", "parquet without the column", "parquet non-text column"])
def test_annotate_corpus_bad_parquet_fails_before_writing(model_dir, tmp_path, case):
    path = tmp_path / "in.parquet"
    if case == "unreadable parquet":
        path.write_bytes(b"PAR1 this is not parquet at all")
        message = "unreadable Parquet file"
    elif case == "parquet without the column":
        write_parquet(path, [{"id": "a", "body": "x"}])
        message = "no column 'text'"
    else:
        write_parquet(path, [{"id": "a", "text": 3.5}])
        message = "holds double, not text"
    output = tmp_path / "out"
    with pytest.raises(ac.AnnotateError, match=message):
        ac.annotate_corpus(str(model_dir), path, output)
    assert not output.exists() and not ac.staging_path(output).exists()


@pytest.mark.timeout(120)
def test_annotate_corpus_crash_leaves_staging_and_resume_completes(model_dir, tmp_path, monkeypatch):
    records = make_records(250, seed=2)
    path = write_jsonl(tmp_path / "in.jsonl", records)
    output = tmp_path / "out"
    write = ac.ShardWriter.write
    calls = []

    def crash_on_third(self, table):
        calls.append(table.num_rows)
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        return write(self, table)

    monkeypatch.setattr(ac.ShardWriter, "write", crash_on_third)
    with pytest.raises(RuntimeError, match="simulated crash"):
        ac.annotate_corpus(str(model_dir), path, output, shard_size=50, batch_size=50)
    monkeypatch.undo()
    staging = ac.staging_path(output)
    assert not output.exists(), "a crashed run must not look finished"
    assert len(list(staging.glob("part-*.parquet"))) == 2 and not (staging / ac.SUCCESS_FILE).exists()
    (staging / ".part-00002.parquet.tmp").write_bytes(b"half a shard")  # as a kill mid-write leaves it

    with pytest.raises(ac.AnnotateError, match="pass --resume"):
        ac.annotate_corpus(str(model_dir), path, output, shard_size=50)
    with pytest.raises(ac.AnnotateError, match="other settings"):
        ac.annotate_corpus(str(model_dir), path, output, fmt="jsonl", resume=True)
    summary = ac.annotate_corpus(str(model_dir), path, output, shard_size=50, resume=True)
    assert (summary.skipped, summary.docs) == (100, 150)
    assert not staging.exists() and not list(output.glob(".*"))
    assert_unique_ids(output)
    assert_equal_output(ac.read_output(output), reference(model_dir, records))

    with pytest.raises(ac.AnnotateError, match="exists"):
        ac.annotate_corpus(str(model_dir), path, output)
    assert ac.annotate_corpus(str(model_dir), path, output, overwrite=True).docs == 250


@pytest.mark.timeout(180)
def test_annotate_corpus_driver_killed_then_resume_local(model_dir, tmp_path):
    """SIGKILL of the command itself mid-run (no clean-up code runs), then --resume."""
    records = make_records(3000, seed=3)
    path = write_jsonl(tmp_path / "in.jsonl", records)
    output = tmp_path / "out"
    args = [str(model_dir), str(path), str(output), "--shard-size", "100", "--batch-size", "20", "-q"]
    kept = kill_cli_mid_run(args, output, timeout=120)
    assert 0 < kept < 3000
    result = CliRunner().invoke(app, ["annotate", "corpus", *args, "--resume"])
    assert result.exit_code == 0, result.output
    assert f"{kept:,} docs were done by the interrupted run" in result.output
    assert_unique_ids(output)
    assert_equal_output(ac.read_output(output), reference(model_dir, records))


def wait_for_parts(staging: Path, n: int, proc=None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(list(staging.glob("part-*"))) < n:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before {n} shards were written")
        if time.monotonic() > deadline:
            raise AssertionError(f"{staging}: fewer than {n} shards after {timeout} s")
        time.sleep(0.1)


def kill_cli_mid_run(args, output: Path, timeout: float) -> int:
    """Start `annotate-corpus ARGS` as a subprocess, SIGKILL it once two shards are in
    its staging folder (no clean-up code runs), check that nothing looks finished, and
    return how many docs the staging folder kept."""
    proc = subprocess.Popen([sys.executable, "-m", "spacy_encoder.cli", "annotate", "corpus", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_parts(ac.staging_path(output), 2, proc, timeout=timeout)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert not output.exists()
    return len(ac.read_output_ids(ac.staging_path(output), "parquet"))


def test_cli_annotate_corpus_fails_in_one_line(model_dir, tmp_path):
    missing = tmp_path / "no-such-corpus.jsonl"
    result = CliRunner().invoke(app, ["annotate", "corpus", str(model_dir), str(missing), str(tmp_path / "out")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "no-such-corpus.jsonl" in result.output.replace("\n", "")
    path = write_jsonl(tmp_path / "in.jsonl", make_records(3))
    result = CliRunner().invoke(app, ["annotate", "corpus", str(tmp_path / "no-such-model"), str(path), str(tmp_path / "out")])
    assert result.exit_code == 1 and "no-such-model" in result.output.replace("\n", "") and "Traceback" not in result.output


def test_plan_cpus_leaves_room_for_reading():
    assert ac.plan_cpus(2, None) == (2, 0.9, 1)
    assert ac.plan_cpus(16, 4) == (4, 1.0, 1)
    assert ac.plan_cpus(16, 4, 3.5) == (4, 3.5, 3)
    with pytest.raises(ac.AnnotateError, match="ray#44687"):
        ac.plan_cpus(2, 2, 1.0)


def test_ray_engine_without_ray_says_how_to_install(model_dir, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    path = write_jsonl(tmp_path / "in.jsonl", make_records(3))
    with pytest.raises(ac.MissingExtraError, match=r'pip install "spacy-encoder\[ray\]"'):
        ac.annotate_corpus(str(model_dir), path, tmp_path / "out", engine="ray", address="auto")
    assert not ac.staging_path(tmp_path / "out").exists()


# --- the Ray engine on a real local cluster -----------------------------------------


@pytest.fixture
def ray_cluster(monkeypatch):
    """A head and a worker node, one CPU and a 200 MB object store each, with token
    authentication on a token of this process (Ray >= 2.59 wants one; the mode is read
    at import, so it is set first). Shut down whatever the test did."""
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", RAY_TOKEN)
    import ray
    from ray.cluster_utils import Cluster

    node_args = {"num_cpus": 1, "object_store_memory": OBJECT_STORE}
    cluster = Cluster(initialize_head=True, head_node_args={**node_args, "include_dashboard": False})
    try:
        worker = cluster.add_node(**node_args)
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        yield cluster, worker, node_args
    finally:
        ray.shutdown()
        cluster.shutdown()


def run_in_thread(**kwargs):
    """annotate_corpus in a thread; returns (thread, result dict with summary or error)."""
    result: dict = {}

    def target():
        try:
            result["summary"] = ac.annotate_corpus(**kwargs)
        except BaseException as err:  # handed to the test
            result["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


def join(thread, result, timeout: float):
    thread.join(timeout)
    assert not thread.is_alive(), f"the run did not finish in {timeout} s"
    if "error" in result:
        raise result["error"]
    return result["summary"]


def annotator_pids() -> list[int]:
    """Ray worker processes running a CorpusAnnotator, among this test's descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [os.getpid()]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            todo.append(child)
            try:
                if b"CorpusAnnotator" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(child)
            except OSError:
                pass
    return found


@needs_ray
@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("fmt", ["parquet", "docbin"])
def test_annotate_corpus_ray_equals_nlp_pipe(model_dir, tmp_path, ray_cluster, fmt):
    cluster, _, _ = ray_cluster
    records = make_records(1200, seed=4)
    folder = tmp_path / "in"
    folder.mkdir()
    write_parquet(folder / "a.parquet", records[:700])
    write_parquet(folder / "b.parquet", records[700:])
    output = tmp_path / "out"
    summary = ac.annotate_corpus(str(model_dir), folder, output, engine="ray", fmt=fmt, address=cluster.address, shard_size=400, batch_size=50)
    assert summary.docs == 1200 and summary.workers == 2 and summary.details["cpus_per_worker"] == 0.9
    assert_unique_ids(output, fmt)
    assert_equal_output(ac.read_output(output, fmt), reference(model_dir, records))


@needs_ray
@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.parametrize("fault", ["killed_worker", "removed_node"])
def test_annotate_corpus_ray_survives_a_fault(model_dir, tmp_path, ray_cluster, fault):
    """A worker SIGKILLed, or a node removed (and a replacement added), mid-job: the
    output is complete, without duplicates, and equal to nlp.pipe's."""
    cluster, worker, node_args = ray_cluster
    records = make_records(4000, seed=5 if fault == "killed_worker" else 6)
    path = write_jsonl(tmp_path / "in.jsonl", records)
    output = tmp_path / "out"
    thread, result = run_in_thread(model=str(model_dir), input_path=path, output=output, engine="ray", address=cluster.address, shard_size=200, batch_size=20)
    wait_for_parts(ac.staging_path(output), 1, timeout=240)
    if fault == "killed_worker":
        pids = annotator_pids()
        assert pids, "no CorpusAnnotator worker found"
        os.kill(pids[0], signal.SIGKILL)
    else:
        cluster.remove_node(worker, allow_graceful=False)
        cluster.add_node(**node_args)  # the replacement
    summary = join(thread, result, 300)
    assert summary.docs == 4000
    assert_unique_ids(output)
    assert_equal_output(ac.read_output(output), reference(model_dir, records))


@needs_ray
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_annotate_corpus_ray_driver_killed_then_resume(model_dir, tmp_path, ray_cluster):
    cluster, _, _ = ray_cluster
    records = make_records(4000, seed=7)
    path = write_jsonl(tmp_path / "in.jsonl", records)
    output = tmp_path / "out"
    args = [str(model_dir), str(path), str(output), "--engine", "ray", "--address", cluster.address, "--shard-size", "200", "--batch-size", "20", "-q"]
    kept = kill_cli_mid_run(args, output, timeout=240)
    summary = ac.annotate_corpus(str(model_dir), path, output, engine="ray", address=cluster.address, shard_size=200, batch_size=20, resume=True)
    assert summary.skipped == kept and summary.docs == 4000 - kept
    assert_unique_ids(output)
    assert_equal_output(ac.read_output(output), reference(model_dir, records))
