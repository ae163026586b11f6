"""Inference speed of trained pipelines side by side: words/s of `nlp.pipe` over
documents of N texts of the corpus joined, and the median ms of single `nlp(text)`
calls on its texts, the pipelines taking turns round by round in one process (drift of
the machine hits all alike). The texts are the corpus's docs as stored: sentences, or
whole documents where the conversion kept them (CoNLL-03's -DOCSTART- documents).

    python benchmarks/pipelines_ab.py corpus/conll2003/test.spacy \\
        today=training/rare50-s0-onnx-int8 chars=training/chars-s0-onnx-int8 cnn=training/cnn-s0/model-best

Each PIPELINE is NAME=PATH (a pipeline folder); the first is the reference of the
ratios. Prints the host (`spacy_encoder.host`) and the load average before and after:
figures from a busy machine are not comparable. Reports the median over rounds and the
range (min-max), never the best round alone.
"""
import argparse
import os
import time
from pathlib import Path
from statistics import median
from typing import Dict, List


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path, help=".spacy file whose texts are annotated (its docs, in order)")
    parser.add_argument("pipelines", nargs="+", help="NAME=PATH, the first the reference")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--texts-per-doc", type=int, default=10)
    parser.add_argument("--n-docs", type=int, default=300, help="docs per batch round (0 = all)")
    parser.add_argument("--single", type=int, default=200, help="single requests per round (texts)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    import spacy
    from spacy.tokens import DocBin

    from spacy_encoder.host import cores, cpu_info

    pipelines = dict(item.split("=", 1) for item in args.pipelines)
    cpu = cpu_info()
    print(
        f"host: {cpu['model_name']} (family {cpu['family']} model {cpu['model']}, flags {' '.join(cpu['flags'] or [])}), "
        f"{cores()['logical']} cores; load average before: {os.getloadavg()}"
    )
    nlp0 = spacy.blank("en")
    texts = [doc.text for doc in DocBin().from_disk(args.corpus).get_docs(nlp0.vocab)]
    step = args.texts_per_doc
    docs = [" ".join(texts[i : i + step]) for i in range(0, len(texts), step)]
    docs = docs[: args.n_docs] if args.n_docs else docs
    singles = texts[: args.single]
    n_words = sum(len(nlp0.make_doc(text)) for text in docs)
    loaded = {name: spacy.load(path) for name, path in pipelines.items()}
    for nlp in loaded.values():  # warm up: sessions, first allocations
        list(nlp.pipe(docs[:20], batch_size=args.batch_size))
        for text in singles[:20]:
            nlp(text)
    words_per_s: Dict[str, List[float]] = {name: [] for name in loaded}
    single_ms: Dict[str, List[float]] = {name: [] for name in loaded}
    for _ in range(args.rounds):
        for name, nlp in loaded.items():
            start = time.perf_counter()
            for _doc in nlp.pipe(docs, batch_size=args.batch_size):
                pass
            words_per_s[name].append(n_words / (time.perf_counter() - start))
            times = []
            for text in singles:
                start = time.perf_counter()
                nlp(text)
                times.append((time.perf_counter() - start) * 1000)
            single_ms[name].append(median(times))
    reference = next(iter(loaded))
    print(f"{len(docs)} docs of {step} texts ({n_words} words), {len(singles)} single requests, {args.rounds} rounds")
    print("| pipeline | words/s, median (range) | x first | single request ms, median (range) | x first |")
    print("|---|---|---|---|---|")
    for name in loaded:
        w, s = words_per_s[name], single_ms[name]
        print(
            f"| {name} | {median(w):,.0f} ({min(w):,.0f}-{max(w):,.0f}) | {median(w) / median(words_per_s[reference]):.2f} "
            f"| {median(s):.2f} ({min(s):.2f}-{max(s):.2f}) | {median(single_ms[reference]) / median(s):.2f} |"
        )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
