"""Throughput of `annotate corpus`: nlp.pipe with n_process 1 and 2, and the Ray engine
with 1 and 2 workers, on the same synthetic corpus in the same run.

    python benchmarks/bench_annotate_corpus.py MODEL --n-docs 20000 [--engines pipe1,pipe2,ray1,ray2]

Prints docs/s and words/s of each, Ray's per-worker efficiency (Ray docs/s per worker
divided by nlp.pipe n_process=1 docs/s, steady state) and its fixed start-up cost
(a local cluster started, workers loading the pipeline: the time of a run minus its
docs at the steady rate, measured as the difference of two corpus sizes). It also
prints the load average: on a machine that runs other work the numbers are not
comparable with a quiet one.
"""
from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import typer

WORDS = ("the a of to and in that is was he for it with as his on be at by I this had not are but from or have an they which one you were her all "
         "London Berlin Paris Angela Merkel Apple Google Tim Cook EU Germany British lamb").split()


def make_corpus(path: Path, n: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    words = 0
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            k = rng.randint(5, 25)
            words += k
            f.write(json.dumps({"id": i, "text": " ".join(rng.choice(WORDS) for _ in range(k))}) + "\n")
    return words


def time_pipe(model: str, path: Path, n_process: int, batch_size: int) -> tuple[float, int, int]:
    import spacy
    import torch

    from spacy_encoder.annotate import iter_records, input_files

    torch.set_num_threads(1)
    nlp = spacy.load(model)
    texts = [t for _, t in iter_records(input_files(path))]
    start = time.perf_counter()
    n = words = 0
    for doc in nlp.pipe(texts, batch_size=batch_size, n_process=n_process):
        n += 1
        words += len(doc)
    return time.perf_counter() - start, n, words


def main(
    model: str = typer.Argument(..., metavar="MODEL", help="Pipeline folder or package name."),
    n_docs: int = typer.Option(20_000, "--n-docs", help="Docs in the corpus."),
    engines: str = typer.Option("pipe1,pipe2,ray1,ray2", "--engines", help="Comma-separated: pipe1, pipe2, ray1, ray2."),
    batch_size: int = typer.Option(64, "--batch-size", help="nlp.pipe batch size."),
) -> None:
    """Print docs/s of nlp.pipe and the Ray engine on one synthetic corpus."""
    from spacy_encoder.annotate import annotate_corpus

    print(f"load average before: {os.getloadavg()}, {os.cpu_count()} CPUs", flush=True)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus, small = Path(tmp) / "corpus.jsonl", Path(tmp) / "small.jsonl"
        words = make_corpus(corpus, n_docs)
        make_corpus(small, max(n_docs // 10, 100), seed=1)
        for name in engines.split(","):
            if name.startswith("pipe"):
                seconds, n, w = time_pipe(model, corpus, int(name[4:]), batch_size)
                rows[name] = {"seconds": seconds, "docs_per_s": n / seconds, "words_per_s": w / seconds}
            else:
                workers = int(name[3:])
                timings = []
                for path in (small, corpus):
                    out = Path(tmp) / f"out-{name}-{path.stem}"
                    start = time.perf_counter()
                    summary = annotate_corpus(model, path, out, engine="ray", workers=workers, batch_size=batch_size, shard_size=5000)
                    timings.append((summary.docs, time.perf_counter() - start))
                (n_small, t_small), (n_big, t_big) = timings
                steady = (n_big - n_small) / (t_big - t_small)
                rows[name] = {
                    "seconds": t_big, "docs_per_s": n_big / t_big, "words_per_s": words / t_big,
                    "steady_docs_per_s": steady, "startup_s": t_big - n_big / steady, "workers": workers,
                }
            print(name, {k: round(v, 2) for k, v in rows[name].items()}, f"load {os.getloadavg()[0]:.2f}", flush=True)
    if "pipe1" in rows:
        for name, row in rows.items():
            if "workers" in row:
                row["efficiency_per_worker"] = row["steady_docs_per_s"] / row["workers"] / rows["pipe1"]["docs_per_s"]
                print(f"{name}: per-worker efficiency {row['efficiency_per_worker']:.2f}, start-up {row['startup_s']:.1f} s")
    print(f"load average after: {os.getloadavg()}")
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    sys.exit(typer.run(main))
