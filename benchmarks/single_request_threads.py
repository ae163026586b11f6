"""Single requests with the small-input thread policy on and off: one
`nlp(text)` call per sentence, as a web service makes one per request, on the bench's
untrained NER pipeline (configs/ner.cfg's settings: a trained model costs the same).

    python benchmarks/single_request_threads.py                       # eager, CoNLL-03 test
    python benchmarks/single_request_threads.py --pipeline ner-ours-int8 --threads 2
    OMP_WAIT_POLICY=ACTIVE python benchmarks/single_request_threads.py

"on" is the default (`spacy_encoder.threads`: forwards of at most 256 padded positions
on one intra-op thread), "off" sets SPACY_ENCODER_SMALL_INPUT_TOKENS=0. The two take
turns round by round in one process, so drift of the machine hits both alike; spaCy's
CNN (efficiency config) is timed beside them for the ratio the issue's targets use.
Prints the host, then per mode the median and 90th-percentile ms per call and the
median over rounds. Run it on a quiet machine: it prints the load average.
"""
import argparse
import os
import time
from pathlib import Path
from statistics import median
from typing import Dict, List

REPO = Path(__file__).resolve().parents[1]
CONLL_TEST = REPO / ".." / "shared" / "corpora" / "conll2003" / "test.txt"
WIKIGOLD = REPO / "corpus" / "wikigold" / "wikigold.conll.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("conll", type=Path, nargs="?", default=None, help="CoNLL column file (default: CoNLL-03 test, else WikiGold from corpus/)")
    parser.add_argument("--pipeline", default="ner-ours", help="bench pipeline: ner-ours (eager), ner-ours-torchscript, ner-ours-frozen, ner-ours-int8, ner-ours-onnx, ner-ours-onnx-int8")
    parser.add_argument("--sents-per-request", type=int, default=1)
    parser.add_argument("--n-texts", type=int, default=300, help="requests per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--no-cnn", action="store_true", help="leave out spaCy's CNN")
    args = parser.parse_args()
    # As `bench speed` runs its measurements; set before torch (its OpenMP) is loaded.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    import torch

    from spacy_encoder import bench, threads
    from spacy_encoder.host import host_lines, host_record

    path = args.conll or (CONLL_TEST if CONLL_TEST.exists() else WIKIGOLD)
    texts = bench.column_texts(path, args.sents_per_request, args.n_texts)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(host_lines(host_record(calibrate=False))[0])
    print(
        f"{path.name}: {len(texts)} requests of {args.sents_per_request} sentence(s), pipeline {args.pipeline}; "
        f"torch threads {torch.get_num_threads()}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, "
        f"threshold {threads.small_input_tokens()} positions; load average {os.getloadavg()[0]:.2f}"
    )
    nlp = bench.build_pipeline(args.pipeline)
    cnn = None if args.no_cnn else bench.build_pipeline("ner-cnn-efficiency")
    modes = {"policy on": (nlp, None), "policy off": (nlp, "0")}
    if cnn is not None:
        modes["spaCy CNN efficiency"] = (cnn, None)

    def run(mode: str, batch: List[str]) -> List[float]:
        pipeline, value = modes[mode]
        if value is None:
            os.environ.pop(threads.ENV_VAR, None)
        else:
            os.environ[threads.ENV_VAR] = value
        times = []
        for text in batch:
            start = time.perf_counter()
            pipeline(text)
            times.append(time.perf_counter() - start)
        os.environ.pop(threads.ENV_VAR, None)
        return times

    for mode in modes:  # warm-up: allocator, kernels
        run(mode, texts[:20])
    medians: Dict[str, List[float]] = {mode: [] for mode in modes}
    p90s: Dict[str, List[float]] = {mode: [] for mode in modes}
    names = list(modes)
    for r in range(args.rounds):
        for mode in names[r % len(names) :] + names[: r % len(names)]:
            times = sorted(run(mode, texts))
            medians[mode].append(1000 * median(times))
            p90s[mode].append(1000 * times[int(0.9 * (len(times) - 1))])
        print(f"  round {r + 1}/{args.rounds}: " + ", ".join(f"{m} {medians[m][-1]:.2f} ms" for m in names), flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}\n")
    reference = median(medians[names[-1]]) if cnn is not None else None
    print("| mode | median ms per call | p90 ms | rounds (median ms) |" + (" × CNN |" if reference else ""))
    print("|---|---|---|---|" + ("---|" if reference else ""))
    for mode in names:
        ms = median(medians[mode])
        cells = [mode, f"{ms:.2f}", f"{median(p90s[mode]):.2f}", ", ".join(f"{x:.2f}" for x in medians[mode])]
        if reference:
            cells.append(f"{reference / ms:.2f}")
        print("| " + " | ".join(cells) + " |")
    print(f"\npolicy off / policy on: {median(medians['policy off']) / median(medians['policy on']):.2f}")


if __name__ == "__main__":
    main()
