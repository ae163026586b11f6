"""`nlp.pipe(n_process=N)` over many docs under each multiprocessing start method: docs/s,
docs returned against docs sent (errors), and the resident memory of the parent and
its workers sampled over time (it must be flat after warm-up).

    python benchmarks/pipe_processes.py training/ner-onnx-int8 --data corpus/conll2003/test.spacy
    python benchmarks/pipe_processes.py training/ner-onnx-int8 --n-docs 2000 --methods spawn   # a smoke run

Each start method runs in a fresh Python process (the start method is set once per
process, before any worker starts), one after the other. spaCy's workers use the
default multiprocessing context, which `multiprocessing.set_start_method` sets. The
texts are the sentences of --data, repeated up to --n-docs. Prints the host's load
average before and after: figures from a busy machine are not comparable.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[1]


def read_texts(path: Path) -> List[str]:
    """The texts of a .spacy file, or one text per non-empty line of any other file."""
    if path.suffix == ".spacy":
        import spacy
        from spacy.tokens import DocBin

        return [doc.text for doc in DocBin().from_disk(path).get_docs(spacy.blank("en").vocab)]
    return [line.strip() for line in path.read_text(encoding="utf8").splitlines() if line.strip()]


def rss_mb(pid: int) -> float:
    """VmRSS of `pid` and of all its descendants, in MB (0 for a process that ended)."""
    total = 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
        for task in Path(f"/proc/{pid}/task").iterdir():
            children = (task / "children").read_text().split()
            total += sum(rss_mb(int(child)) for child in children)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return total


def child(args: argparse.Namespace) -> None:
    import multiprocessing

    multiprocessing.set_start_method(args.child, force=True)
    import spacy

    nlp = spacy.load(args.model)
    texts = read_texts(args.data)
    stream = (texts[i % len(texts)] for i in range(args.n_docs))
    samples: List[Dict[str, float]] = []
    done = threading.Event()
    start = time.perf_counter()

    def sample() -> None:
        while not done.wait(args.sample_every):
            samples.append({"s": round(time.perf_counter() - start, 1), "mb": round(rss_mb(os.getpid()), 1)})

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    n_docs, errors = 0, 0
    try:
        for _doc in nlp.pipe(stream, n_process=args.processes, batch_size=args.batch_size):
            n_docs += 1
    except Exception as err:  # counted and reported: the benchmark's point is that there are none
        errors += 1
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    print(json.dumps({"method": args.child, "docs": n_docs, "sent": args.n_docs, "errors": errors, "seconds": seconds, "samples": samples}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="pipeline folder")
    parser.add_argument("--data", type=Path, default=REPO / "corpus" / "conll2003" / "test.spacy")
    parser.add_argument("--n-docs", type=int, default=100_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--methods", default="fork,spawn,forkserver")
    parser.add_argument("--sample-every", type=float, default=2.0, help="seconds between RSS samples")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    print(f"load average before: {os.getloadavg()}")
    print(f"{args.model}: {args.n_docs:,} docs of {args.data}, nlp.pipe(n_process={args.processes}, batch_size={args.batch_size})")
    print("| start method | docs/s | docs returned / sent | errors | RSS MB, parent + workers: first / last / max (samples every "
          f"{args.sample_every:g} s) |")
    print("|---|---|---|---|---|")
    series: List[str] = []
    for method in args.methods.split(","):
        command = [sys.executable, __file__, args.model, "--data", str(args.data), "--n-docs", str(args.n_docs), "--processes",
                   str(args.processes), "--batch-size", str(args.batch_size), "--sample-every", str(args.sample_every), "--child", method]
        done = subprocess.run(command, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            print(f"| {method} | failed (exit {done.returncode}) | | | {done.stderr.strip().splitlines()[-1:] } |")
            continue
        result = json.loads(lines[-1])
        memory = [s["mb"] for s in result["samples"]] or [0.0]
        print(f"| {method} | {result['docs'] / result['seconds']:,.0f} | {result['docs']:,} / {result['sent']:,} | {result['errors']} "
              f"| {memory[0]:,.0f} / {memory[-1]:,.0f} / {max(memory):,.0f} |")
        series.append(f"{method}: " + " ".join(f"{mb:,.0f}" for mb in memory))
    print("RSS MB over time:", *series, sep="\n  ")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
