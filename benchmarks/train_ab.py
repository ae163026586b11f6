"""NER training words/s of several pipelines, possibly from several checkouts of this
repository, interleaved (issue 20): `spacy_encoder.bench.measure_training`, the bench's
own training measurement, one fresh process per measurement, the order rotated each
round, medians and the ratio to the variant named by --base.

    python benchmarks/train_ab.py before=/tmp/old:ner-ours after=.:ner-ours \
        after-fd=.:ner-ours-fast-dropout cnn=.:ner-cnn-efficiency --base cnn --rounds 5 --steps 40
    python benchmarks/train_ab.py d4=.:ner-ours-vectors-mix3 d2=.:ner-ours-vectors-mix3-depth2 \
        cnn=.:ner-cnn-efficiency-vectors --base cnn --vectors ../shared/vectors/en_core_web_md

A variant is LABEL=TREE:PIPELINE, PIPELINE one of `spacy_encoder.bench.PIPELINES`; TREE
is a checkout (e.g. `git worktree add /tmp/old <commit>`) whose `spacy_encoder` the
measuring process imports instead of the installed one (it runs in TREE with TREE on
its PYTHONPATH). Run it on a quiet machine.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, sys, warnings
warnings.filterwarnings("ignore")
import spacy_encoder
from spacy_encoder import bench
result = bench.measure_training(**json.loads(sys.stdin.read()))
result["imported_from"] = spacy_encoder.__file__
print(json.dumps(result))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", help="LABEL=TREE:PIPELINE")
    parser.add_argument("--base", required=True, help="the label the ratios are to")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30, help="timed nlp.update steps per measurement")
    parser.add_argument("--train", type=Path, default=ROOT.parent / "shared/corpora/conll2003/train.txt")
    parser.add_argument("--vectors", default=None, help="static vectors folder for the pipelines that take vectors (the bench's --vectors)")
    args = parser.parse_args()
    variants = []
    for spec in args.variants:
        label, _, rest = spec.partition("=")
        tree, _, name = rest.rpartition(":")
        if not (label and tree and name):
            parser.error(f"{spec!r}: expected LABEL=TREE:PIPELINE")
        variants.append((label, str(Path(tree).resolve()), name))
    if args.base not in {v[0] for v in variants}:
        parser.error(f"--base {args.base!r} is none of the labels")
    if not args.train.exists():
        parser.error(f"{args.train}: no CoNLL-03 train file (the bench's training text)")
    from spacy_encoder import bench

    texts = bench.column_texts(args.train, 10, 300)
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    runs = {label: [] for label, _, _ in variants}
    for r in range(args.rounds):
        for label, tree, name in variants[r % len(variants) :] + variants[: r % len(variants)]:
            # PYTHONPATH's entries come before the installed package (an editable
            # install's finder too), and `-c` puts the working directory first.
            env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"), "PYTHONPATH": tree}
            request = {"name": name, "texts": texts, "n_steps": args.steps, "batch_words": 1000, "vectors": args.vectors}
            proc = subprocess.run(
                [sys.executable, "-c", CHILD], input=json.dumps(request), capture_output=True, text=True, env=env, cwd=tree
            )
            if proc.returncode:
                sys.exit(f"{label}: the measurement failed:\n{proc.stderr[-2000:]}")
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            if not result["imported_from"].startswith(tree):
                sys.exit(f"{label}: imported {result['imported_from']}, not {tree}")
            runs[label].append(result["wps"])
            print(f"round {r + 1} {label}: {result['wps']:,.0f} words/s", flush=True)
    base = statistics.median(runs[args.base])
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print(f"| variant | rounds, words/s | median | × {args.base} |\n|---|---|---|---|")
    for label, xs in runs.items():
        median = statistics.median(xs)
        print(f"| {label} | {' / '.join(f'{x:,.0f}' for x in xs)} | {median:,.0f} | {median / base:.2f} |")


if __name__ == "__main__":
    main()
