"""Where the time of NER inference goes, stage by stage (issue 20's profile).

    python benchmarks/profile_inference.py ../shared/corpora/conll2003/test.txt --sents-per-doc 10
    python benchmarks/profile_inference.py ../shared/corpora/conll2003/test.txt --sents-per-doc 1

It builds the bench's NER pipeline (configs/ner.cfg's settings, untrained weights: a trained
model costs the same per token) and runs the steps of `nlp.pipe(batch_size=B)` one by
one over the same docs, timing each: spaCy's tokenizer, our feature extraction
(`doc.to_array`), the window and bucket plan, padding, the torch forward (split further
by `torch.profiler` into the embedding/hashing, attention, feed-forward, norms), the
gather back to tokens, and the NER head (`ner.predict` + `set_annotations`). The sum
is compared with the wall time of plain `nlp.pipe` over the same texts, so whatever
the split misses shows as "other".
"""
import argparse
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("conll", type=Path, help="CoNLL-03 column file (test.txt)")
    parser.add_argument("--sents-per-doc", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="median over rounds")
    parser.add_argument("--optimize", default="none", help="none (eager), freeze or int8: as `spacy-encoder deploy script --optimize`")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    import numpy
    import torch
    from statistics import median

    from spacy_encoder import bench
    from spacy_encoder.buckets import plan_windows
    from spacy_encoder.layers import extract_features
    from spacy_encoder.nodes import torch_module

    texts = bench.column_texts(args.conll, args.sents_per_doc)
    nlp = bench.build_pipeline({"none": "ner-ours", "freeze": "ner-ours-frozen", "int8": "ner-ours-int8"}[args.optimize])
    tok2vec, ner = nlp.get_pipe("tok2vec"), nlp.get_pipe("ner")
    t2v = tok2vec.model
    module = torch_module(t2v)
    if getattr(module, "training", False):
        module.eval()
    B = args.batch_size
    list(nlp.pipe(texts[:B], batch_size=B))  # warm-up

    def staged() -> Dict[str, float]:
        times: Dict[str, float] = defaultdict(float)
        clock = time.perf_counter
        for i in range(0, len(texts), B):
            t0 = clock()
            docs = [nlp.make_doc(t) for t in texts[i : i + B]]
            t1 = clock()
            ids = extract_features(docs, t2v.attrs["attr_ids"])
            t2 = clock()
            lengths = [len(d) for d in docs]
            plan = plan_windows(lengths, t2v.attrs["max_length"], t2v.attrs["window_stride"])
            t3 = clock()
            pad = numpy.zeros((1, ids.shape[1]), dtype=ids.dtype)
            padded = numpy.concatenate([ids, pad])[plan.source]
            t4 = clock()
            outs = []
            row = 0
            with torch.inference_mode():
                for first, end, seq_len in plan.buckets:
                    n = end - first
                    Xb = torch.from_numpy(padded[row : row + n * seq_len].reshape(n, seq_len, -1))
                    Lb = torch.from_numpy(plan.lengths[first:end])
                    outs.append(module(Xb, Lb).reshape(-1, module_width).numpy())
                    row += n * seq_len
            t5 = clock()
            Y = numpy.concatenate(outs)[plan.gather]
            offsets = numpy.cumsum([0] + lengths)
            Ys = [Y[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
            t6 = clock()
            # Outside training the ner head's listener reads doc.tensor.
            tok2vec.set_annotations(docs, Ys)
            t7 = clock()
            scores = ner.predict(docs)
            ner.set_annotations(docs, scores)
            t8 = clock()
            times["tokenizer"] += t1 - t0
            times["features (to_array)"] += t2 - t1
            times["window/bucket plan"] += t3 - t2
            times["padding"] += t4 - t3
            times["torch forward"] += t5 - t4
            times["gather + split"] += t6 - t5
            times["doc.tensor"] += t7 - t6
            times["NER head"] += t8 - t7
        return times

    module_width = t2v.get_dim("nO")
    n_words = sum(len(nlp.make_doc(t)) for t in texts)
    rounds: List[Dict[str, float]] = []
    walls: List[float] = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        list(nlp.pipe(texts, batch_size=B))
        walls.append(time.perf_counter() - start)
        rounds.append(staged())
    stage = {k: median(r[k] for r in rounds) for k in rounds[0]}
    wall = median(walls)
    total = sum(stage.values())
    print(f"{len(texts)} docs of {args.sents_per_doc} sentence(s), {n_words:,} words, batch {B}, "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}"
          + f", encoder: {args.optimize}")
    print(f"nlp.pipe: {wall:.3f} s = {n_words / wall:,.0f} words/s; stages summed: {total:.3f} s")
    print("| stage | seconds | share of nlp.pipe |")
    print("|---|---|---|")
    for k, v in stage.items():
        print(f"| {k} | {v:.3f} | {v / wall:.1%} |")
    print(f"| other (nlp.pipe − stages) | {wall - total:.3f} | {(wall - total) / wall:.1%} |")

    # Inside the forward: operator groups from torch.profiler over one pass.
    from torch.profiler import ProfilerActivity, profile, record_function

    docs = [nlp.make_doc(t) for t in texts]
    ids = extract_features(docs, t2v.attrs["attr_ids"])
    plan = plan_windows([len(d) for d in docs], t2v.attrs["max_length"], t2v.attrs["window_stride"])
    padded = numpy.concatenate([ids, numpy.zeros((1, ids.shape[1]), dtype=ids.dtype)])[plan.source]
    embed, encoder = getattr(module, "embed", None), getattr(module, "encoder", None)
    with profile(activities=[ProfilerActivity.CPU]) as prof, torch.inference_mode():
        row = 0
        for first, end, seq_len in plan.buckets:
            n = end - first
            Xb = torch.from_numpy(padded[row : row + n * seq_len].reshape(n, seq_len, -1))
            Lb = torch.from_numpy(plan.lengths[first:end])
            row += n * seq_len
            if embed is None:  # frozen: one graph, no submodules
                module(Xb, Lb)
                continue
            with record_function("embed (hashing, table, mix, norm)"):
                x = embed(Xb)
            with record_function("encoder layers"):
                encoder(x, Lb)
    groups = defaultdict(float)
    for evt in prof.key_averages():
        groups[evt.key] = evt.self_cpu_time_total / 1e6
    forward_total = sum(groups.values())
    print("\ntorch.profiler, one pass over all docs, self CPU time by operator (top 12):")
    print("| operator | seconds | share of forward |")
    print("|---|---|---|")
    for key, sec in sorted(groups.items(), key=lambda kv: -kv[1])[:12]:
        if key.startswith("embed") or key.startswith("encoder"):
            continue
        print(f"| {key} | {sec:.3f} | {sec / forward_total:.1%} |")
    scopes = {e.key: e.cpu_time_total / 1e6 for e in prof.key_averages() if e.key.startswith(("embed", "encoder"))}
    for key, sec in scopes.items():
        print(f"| {key} (inclusive) | {sec:.3f} | {sec / max(sum(scopes.values()), 1e-9):.1%} of the two |")


if __name__ == "__main__":
    main()
