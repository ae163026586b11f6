"""`spacy-encoder bench speed`: speed and memory against spaCy's CNN pipelines."""
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Dict, List

import typer
from wasabi import msg

from . import group, load_pipeline

DEFAULT_CORPORA = Path("../shared/corpora")


DEFAULT_VECTORS = Path("../shared/vectors/en_core_web_md")
BUSY_PER_CPU = 0.25  # 1-minute load average per CPU above which the machine is not quiet

# Texts of the single-request rows: CoNLL-03 test sentences, one `nlp(text)` each.
LATENCY_TEXTS = 600
# (results key, title, pipelines, texts key): the inference sections, in order.
INFERENCE_SECTIONS = (
    ("latency_ner", f"Single requests, NER: nlp(text), one CoNLL-03 test sentence per call ({LATENCY_TEXTS} calls)", ["ner-ours", "ner-ours-int8", "ner-ours-onnx", "ner-ours-onnx-int8", "ner-ours-depth4", "ner-ours-depth4-onnx-int8", "ner-ours-depth1-onnx-int8", "ner-cnn-efficiency"], "latency"),
    ("inference_ner", "Inference, NER, CoNLL-03 test (10-sentence docs)", ["ner-ours", "ner-ours-torchscript", "ner-ours-frozen", "ner-ours-int8", "ner-ours-onnx", "ner-ours-onnx-int8", "ner-ours-depth4-onnx-int8", "ner-ours-depth1-onnx-int8", "ner-cnn-efficiency", "ner-cnn-accuracy"], "ner10"),
    ("inference_ner_1sent", "Inference, NER, CoNLL-03 test (1-sentence docs)", ["ner-ours", "ner-ours-frozen", "ner-ours-int8", "ner-ours-onnx", "ner-ours-onnx-int8", "ner-ours-depth4-onnx-int8", "ner-ours-depth1-onnx-int8", "ner-cnn-efficiency", "ner-cnn-accuracy"], "ner1"),
    ("inference_ner_vectors", "Inference, NER with en_core_web_md vectors, CoNLL-03 test (10-sentence docs)", ["ner-ours-vectors", "ner-ours-vectors-int8", "ner-ours-vectors-onnx", "ner-ours-vectors-onnx-int8", "ner-cnn-efficiency-vectors"], "ner10"),
    ("inference_textcat", "Inference, textcat, SST-2 dev", ["textcat-ours", "textcat-ours-torchscript", "textcat-cnn-efficiency", "textcat-cnn-accuracy"], "sst2"),
)


@group("bench").command("speed")
def bench_command(
    corpora_dir: Path = typer.Option(DEFAULT_CORPORA, "--corpora-dir", help="Folder with conll2003/ and sst2/ (research corpora)"),
    output_dir: Path = typer.Option(Path("metrics/bench"), "--output-dir", "-o", help="Where results.json and results.md go"),
    rounds: int = typer.Option(3, "--rounds", help="Interleaved rounds per measurement (median reported)"),
    n_docs: int = typer.Option(0, "--n-docs", help="Limit the inference texts (0 = all of CoNLL-03 test / SST-2 dev)"),
    batch_size: int = typer.Option(64, "--batch-size", help="nlp.pipe batch size for inference."),
    train_steps: int = typer.Option(30, "--train-steps", help="Timed nlp.update steps per training measurement"),
    vectors: Path = typer.Option(DEFAULT_VECTORS, "--vectors", help="Static vectors folder for the vectors rows (skipped when missing)."),
    skip_training: bool = typer.Option(False, "--skip-training", help="Inference, doc length and padding only"),
    skip_textcat: bool = typer.Option(False, "--skip-textcat", help="NER only."),
    allow_busy: bool = typer.Option(False, "--allow-busy", help="Run even when the load average shows other work (the figures are then marked as from a busy machine)."),
) -> None:
    """Measure inference and training words/sec, peak RSS, cost against doc length and
    padding waste, for our NER/textcat pipelines (eager, TorchScript and the
    inference-only modes of `script --optimize`) and spaCy's CNN pipelines (efficiency
    and accuracy configs; with and without the same static vectors), interleaved. It
    refuses to start on a busy machine unless --allow-busy."""
    from .. import bench, host

    conll_test = corpora_dir / "conll2003" / "test.txt"
    conll_train = corpora_dir / "conll2003" / "train.txt"
    sst2_dev = corpora_dir / "sst2" / "dev.tsv"
    sst2_train = corpora_dir / "sst2" / "train.tsv"
    for path in (conll_test, conll_train, sst2_dev, sst2_train):
        if not path.exists():
            msg.fail(f"{path} not found: pass --corpora-dir (the folder holding conll2003/ and sst2/).", exits=1)
    busy = bench.busy_reason(BUSY_PER_CPU)
    if busy and not allow_busy:
        msg.fail(f"Not benchmarking: {busy}. Wait for a quiet machine, or pass --allow-busy.", exits=1)
    if busy:
        msg.warn(f"Busy machine: {busy}. The figures will be marked as such.")
    has_vectors = (vectors / "config.cfg").exists() or (vectors / "vocab").exists()
    if not has_vectors:
        msg.warn(f"{vectors}: no vectors pipeline there; skipping the vectors rows (pass --vectors).")
    log = msg.text
    results: Dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "rounds": rounds,
        "batch_size": batch_size,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_average_at_start": bench.load_average(),
        "busy_at_start": busy,
    }
    import torch

    results["machine"]["torch_threads"] = torch.get_num_threads()
    results["machine"]["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
    msg.divider("Host")
    results["host"] = host.host_record()
    for line in host.host_lines(results["host"]):
        log(line)
    other = bench.OtherWork()
    other.start()
    texts = {
        "ner10": bench.column_texts(conll_test, 10, n_docs or None),
        "ner1": bench.column_texts(conll_test, 1, n_docs or None),
        "sst2": bench.tsv_texts(sst2_dev, n_docs or None),
    }
    texts["latency"] = texts["ner1"][:LATENCY_TEXTS]
    for key, title, names, texts_key in INFERENCE_SECTIONS:
        if (skip_textcat and key.startswith("inference_textcat")) or ("vectors" in key and not has_vectors):
            continue
        msg.divider(title)
        args: Dict[str, Any] = {"texts": texts[texts_key]}
        if not key.startswith("latency"):
            args["batch_size"] = batch_size
        if "vectors" in key:
            args["vectors"] = str(vectors)
        kind = "measure_latency" if key.startswith("latency") else "measure_inference"
        results[key] = bench.interleaved(kind, names, rounds, args, log)
    if not skip_training:
        train_ner = bench.column_texts(conll_train, 10, 300)
        train_sst2 = bench.tsv_texts(sst2_train, 20000)
        msg.divider("Training: nlp.update, ~1,000-word batches")
        ner_args = {"texts": train_ner, "n_steps": train_steps, "batch_words": 1000}
        results["training_ner"] = bench.interleaved(
            "measure_training", ["ner-ours", "ner-ours-fast-dropout", "ner-cnn-efficiency", "ner-cnn-accuracy"], rounds, ner_args, log
        )
        if has_vectors:
            results["training_ner_vectors"] = bench.interleaved(
                "measure_training", ["ner-ours-vectors", "ner-ours-vectors-fast-dropout", "ner-cnn-efficiency-vectors"], rounds,
                {**ner_args, "vectors": str(vectors)}, log,
            )
        if not skip_textcat:
            results["training_textcat"] = bench.interleaved(
                "measure_training", ["textcat-ours", "textcat-cnn-efficiency", "textcat-cnn-accuracy"], rounds,
                {"texts": train_sst2, "n_steps": train_steps, "batch_words": 1000}, log,
            )
    msg.divider("Cost against doc length (our NER tok2vec, one doc)")
    lengths: Dict[str, Any] = {}
    for n_tokens in (1_000, 10_000, 100_000):
        result = bench._child("measure_doc_length", {"name": "ner-ours", "n_tokens": n_tokens, "repeats": 3})
        lengths[str(n_tokens)] = result
        log(f"  {n_tokens:>7,} tokens: {result['seconds']:.3f} s, peak RSS {result['peak_rss_mb']:,.0f} MB")
    lengths["ratio_100k_vs_100x1k"] = lengths["100000"]["seconds"] / (100 * lengths["1000"]["seconds"])
    results["doc_length"] = lengths
    msg.divider("Padding waste (padded positions / real tokens - 1)")
    results["padding"] = {
        "conll_train_batch_by_words": bench.padding_waste(bench.column_texts(conll_train, 10), "train"),
        "conll_test_pipe_256": bench.padding_waste(texts["ner10"], "pipe"),
        "sst2_dev_pipe_256": bench.padding_waste(texts["sst2"], "pipe", "textcat"),
    }
    results["other_cpu_share"] = other.share()
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf8")
    table = _markdown(results)
    (output_dir / "results.md").write_text(table, encoding="utf8")
    print()
    print(table)
    msg.good(f"Wrote {output_dir / 'results.json'} and {output_dir / 'results.md'}")


SECTION_TITLES = {key: title for key, title, _, _ in INFERENCE_SECTIONS}
SECTION_TITLES.update(
    {
        "training_ner": "Training, NER, CoNLL-03 train",
        "training_ner_vectors": "Training, NER with en_core_web_md vectors, CoNLL-03 train",
        "training_textcat": "Training, textcat, SST-2 train",
    }
)


def _latency_table(title: str, rows: Dict[str, Any]) -> List[str]:
    """Median ms per `nlp(text)` call; × CNN is the CNN's ms over ours (above 1: faster)."""
    cnn = next((r["median_ms"] for n, r in rows.items() if "cnn-efficiency" in n), None)
    lines = [f"**{title}**", "", "| pipeline | median ms per call | × CNN efficiency | words/sec | peak RSS MB |", "|---|---|---|---|---|"]
    for name, row in rows.items():
        ratio = f"{cnn / row['median_ms']:.2f}" if cnn else "-"
        lines.append(f"| {name} | {row['median_ms']:.2f} | {ratio} | {row['wps']:,.0f} | {row['peak_rss_mb']:,.0f} |")
    return lines + [""]


def _markdown(results: Dict[str, Any]) -> str:
    from ..host import host_lines

    other = results.get("other_cpu_share")
    quiet = (
        "unknown"
        if other is None
        else f"{other:.0%} of one CPU" + (" (quiet)" if other < 0.1 else " (NOT quiet: figures not comparable)")
    )
    # The host first: the ratios below are only comparable between runs on like hosts.
    lines: List[str] = host_lines(results["host"]) if results.get("host") else []
    lines += [
        f"Machine: {results['machine']['cpus']} CPUs, torch threads {results['machine']['torch_threads']}, "
        f"OMP_WAIT_POLICY={results['machine']['OMP_WAIT_POLICY']}; "
        f"median of {results['rounds']} interleaved rounds; untrained weights; "
        f"nlp.pipe batch size {results.get('batch_size', 256)}.",
        f"Load average at start: {results.get('load_average_at_start', float('nan')):.2f}; "
        f"other processes' CPU use during the run: {quiet}.",
        "",
    ]
    for section, title in SECTION_TITLES.items():
        if section not in results:
            continue
        rows = results[section]
        if section.startswith("latency"):
            lines += _latency_table(title, rows)
            continue
        eff = next((r["wps"] for n, r in rows.items() if "cnn-efficiency" in n), None)
        acc = next((r["wps"] for n, r in rows.items() if "cnn-accuracy" in n), None)
        header = "| pipeline | words/sec | × CNN efficiency |" + (" × CNN accuracy |" if acc else "") + " peak RSS MB |"
        lines += [f"**{title}**", "", header, "|---|---|---|" + ("---|" if acc else "") + "---|"]
        for name, row in rows.items():
            cells = [name, f"{row['wps']:,.0f}", f"{row['wps'] / eff:.2f}" if eff else "-"]
            if acc:
                cells.append(f"{row['wps'] / acc:.2f}")
            cells.append(f"{row['peak_rss_mb']:,.0f}")
            lines.append("| " + " | ".join(cells) + " |")
        task = section.split("_")[1]
        eager, scripted = rows.get(f"{task}-ours", {}).get("wps"), rows.get(f"{task}-ours-torchscript", {}).get("wps")
        if eager and scripted:
            lines.append(f"\nTorchScript / eager: {scripted / eager:.2f}")
        lines.append("")
    lengths = results["doc_length"]
    lines += ["**One doc through our NER tok2vec**", "", "| tokens | seconds | peak RSS MB |", "|---|---|---|"]
    for key in ("1000", "10000", "100000"):
        lines.append(f"| {int(key):,} | {lengths[key]['seconds']:.3f} | {lengths[key]['peak_rss_mb']:,.0f} |")
    lines += [f"\n100k-token doc / (100 × 1k-token doc): {lengths['ratio_100k_vs_100x1k']:.2f}", ""]
    lines += ["**Padding waste** (padded positions / real tokens − 1)", "", "| batches | ours (length buckets) | pad to longest |", "|---|---|---|"]
    for key, row in results["padding"].items():
        lines.append(f"| {key} ({row['batches']} batches) | {row['bucketed']:.1%} | {row['pad_to_longest']:.1%} |")
    return "\n".join(lines) + "\n"


@group("bench").command("host")
def bench_host_command(
    as_json: bool = typer.Option(False, "--json", help="Print the record as JSON, as results.json holds it under \"host\"."),
    no_calibration: bool = typer.Option(False, "--no-calibration", help="Leave out the calibration (which takes under a second)."),
) -> None:
    """Name this machine as `bench speed` records it: CPU model, vendor,
    family/model/stepping, the ISA flags that decide our kernels' speed (AVX2, AVX-512,
    VNNI, BF16, FP16, AMX), cores, library versions, and a calibration: fp32 GEMM
    GFLOP/s through torch, numpy and blis, and onnxruntime's int8 MatMulInteger
    (512 x 512, median of 7)."""
    from ..bench import busy_reason
    from ..host import host_lines, host_record

    record = host_record(calibrate=not no_calibration)
    if as_json:
        print(json.dumps(record, indent=2))
        return
    print("\n".join(host_lines(record)).rstrip())
    if not no_calibration and busy_reason(BUSY_PER_CPU):
        msg.warn("Busy machine (see the load average): other work shares the cores, so the calibration understates this host's rates.")


@group("bench").command("memory")
def bench_memory_command(
    model: str = typer.Argument(..., metavar="MODEL", help="Pipeline folder or installed package name."),
    n_docs: int = typer.Option(50_000, "--n-docs", help="Short docs to annotate"),
    batch_size: int = typer.Option(256, "--batch-size", help="Docs per nlp.pipe batch."),
    warmup: int = typer.Option(5_000, "--warmup", help="Docs before the reference RSS is taken"),
) -> None:
    """Memory stability: RSS while `nlp.pipe` annotates many short docs. After warm-up
    the RSS should stay within 10% of its value at the end of warm-up."""
    from ..bench import current_rss_mb

    nlp = load_pipeline(model)
    words = "The European Commission said on Thursday it disagreed with German advice to consumers".split()
    texts = (" ".join(words[i % 7 : i % 7 + 3 + i % 9]) for i in range(n_docs))
    reference = None
    rows = []
    for i, _ in enumerate(nlp.pipe(texts, batch_size=batch_size), start=1):
        if i == warmup:
            reference = current_rss_mb()
            rows.append((i, reference, 0.0))
        elif reference is not None and (i % 5_000 == 0 or i == n_docs):
            rss = current_rss_mb()
            rows.append((i, rss, rss / reference - 1.0))
    if reference is None:
        msg.fail(f"--warmup ({warmup}) must be below --n-docs ({n_docs}).", exits=1)
    msg.table([(f"{i:,}", f"{rss:,.1f}", f"{growth:+.1%}") for i, rss, growth in rows], header=("docs", "RSS MB", "vs warm-up"))
    worst = max(growth for _, _, growth in rows)
    if worst <= 0.10:
        msg.good(f"RSS grew at most {worst:+.1%} after warm-up (limit +10%)")
    else:
        msg.fail(f"RSS grew {worst:+.1%} after warm-up (limit +10%)", exits=1)
