"""Speed and memory benchmark: our pipelines against spaCy's CNN pipelines, measured
in one run.

Every measurement runs in a fresh subprocess (so peak RSS belongs to one pipeline),
and the pipelines take turns round by round (so drift of a shared machine hits all
of them alike). Weights are untrained: a trained model costs the same per token.
"""
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

NER_LABELS = ["PER", "ORG", "LOC", "MISC"]
TEXTCAT_LABELS = ["POSITIVE", "NEGATIVE"]

# name -> (task, how the pipeline is built)
# "config": "ours" (`ours_config`) or spaCy's `init config --optimize` value;
# "optimize": `spacy-encoder deploy script --optimize` modes (deploy.INFERENCE_MODES);
# "onnx": `spacy-encoder deploy onnx --optimize` modes (onnx_export.ONNX_MODES);
# "vectors": the pipeline is given the static vectors folder of the run (--vectors);
# "fast_dropout": the tok2vec's `fast_dropout = true` (training cost only);
# "model": settings of the tok2vec's model over the config's (the cheaper encoders).
PIPELINES: Dict[str, Dict[str, Any]] = {
    "ner-ours": {"task": "ner", "config": "ours"},
    "ner-ours-fast-dropout": {"task": "ner", "config": "ours", "fast_dropout": True},
    "ner-ours-torchscript": {"task": "ner", "config": "ours", "torchscript": True},
    "ner-ours-frozen": {"task": "ner", "config": "ours", "optimize": "freeze"},
    "ner-ours-int8": {"task": "ner", "config": "ours", "optimize": "int8"},
    "ner-ours-onnx": {"task": "ner", "config": "ours", "onnx": "none"},
    "ner-ours-onnx-int8": {"task": "ner", "config": "ours", "onnx": "int8"},
    # The 4-layer encoder of configs/ner.cfg before 2026-12-07, to compare with older runs
    # (the rows above have its 2 layers: docs/benchmarks.md, "Two layers without vectors").
    "ner-ours-depth4": {"task": "ner", "config": "ours", "model": {"depth": 4}},
    "ner-ours-depth4-onnx-int8": {"task": "ner", "config": "ours", "model": {"depth": 4}, "onnx": "int8"},
    # One layer (docs/benchmarks.md, "A cheaper encoder").
    "ner-ours-depth1": {"task": "ner", "config": "ours", "model": {"depth": 1}},
    "ner-ours-depth1-onnx-int8": {"task": "ner", "config": "ours", "model": {"depth": 1}, "onnx": "int8"},
    "ner-cnn-efficiency": {"task": "ner", "config": "efficiency"},
    "ner-cnn-accuracy": {"task": "ner", "config": "accuracy"},
    "ner-ours-vectors": {"task": "ner", "config": "ours", "vectors": True},
    "ner-ours-vectors-fast-dropout": {"task": "ner", "config": "ours", "vectors": True, "fast_dropout": True},
    "ner-ours-vectors-int8": {"task": "ner", "config": "ours", "vectors": True, "optimize": "int8"},
    "ner-ours-vectors-onnx": {"task": "ner", "config": "ours", "vectors": True, "onnx": "none"},
    "ner-ours-vectors-onnx-int8": {"task": "ner", "config": "ours", "vectors": True, "onnx": "int8"},
    # The frontier of cheaper encoders (docs/benchmarks.md): the best accuracy recipe's mixer
    # at depths 4, 3, 2 and 1.
    "ner-ours-vectors-mix3": {"task": "ner", "config": "ours", "vectors": True, "model": {"mix_pieces": 3}},
    "ner-ours-vectors-mix3-depth3": {"task": "ner", "config": "ours", "vectors": True, "model": {"mix_pieces": 3, "depth": 3}},
    "ner-ours-vectors-mix3-depth2": {"task": "ner", "config": "ours", "vectors": True, "model": {"mix_pieces": 3, "depth": 2}},
    "ner-ours-vectors-mix3-depth1": {"task": "ner", "config": "ours", "vectors": True, "model": {"mix_pieces": 3, "depth": 1}},
    "ner-cnn-efficiency-vectors": {"task": "ner", "config": "efficiency", "vectors": True},
    "textcat-ours": {"task": "textcat", "config": "ours"},
    "textcat-ours-torchscript": {"task": "textcat", "config": "ours", "torchscript": True},
    "textcat-cnn-efficiency": {"task": "textcat", "config": "efficiency"},
    "textcat-cnn-accuracy": {"task": "textcat", "config": "accuracy"},
}


def column_texts(path: Path, sents_per_doc: int, limit: Optional[int] = None) -> List[str]:
    """Texts of a CoNLL column file, `sents_per_doc` sentences per text (tokens joined
    by spaces, so spaCy's tokenizer gives back about the same tokens)."""
    sents: List[List[str]] = []
    words: List[str] = []
    for line in path.read_text(encoding="utf8").splitlines():
        parts = line.split()
        if not parts or parts[0] == "-DOCSTART-":
            if words:
                sents.append(words)
            words = []
            continue
        words.append(parts[0])
    if words:
        sents.append(words)
    texts = [" ".join(w for s in sents[i : i + sents_per_doc] for w in s) for i in range(0, len(sents), sents_per_doc)]
    return texts[:limit] if limit else texts


def tsv_texts(path: Path, limit: Optional[int] = None) -> List[str]:
    """SST-2 sentences (first column, header skipped)."""
    lines = path.read_text(encoding="utf8").splitlines()[1:]
    texts = [line.split("\t")[0].strip() for line in lines if line.strip()]
    return texts[:limit] if limit else texts


def ours_config(task: str, vectors_width: int = 0):
    """Our config for `task`, as `spacy-encoder init config` writes it (the settings of
    configs/<task>.cfg, or with `vectors_width` of configs/<task>_vectors.cfg), not
    interpolated."""
    from .init_config import make_config

    return make_config([task], vectors_width=vectors_width)


def build_pipeline(name: str, vectors: Optional[str] = None):
    """An initialized pipeline (untrained weights) for one entry of PIPELINES.
    `vectors`: the static vectors folder for the entries that take vectors."""
    import spacy
    from spacy.cli.init_config import init_config
    from spacy.training import Example

    from .init_config import VECTORS_WIDTH

    spec = PIPELINES[name]
    task = spec["task"]
    with_vectors = bool(spec.get("vectors"))
    if with_vectors and not vectors:
        raise ValueError(f"{name} needs a vectors folder (--vectors)")
    if spec["config"] == "ours":
        config = ours_config(task, VECTORS_WIDTH if with_vectors else 0)
        config["paths"]["vectors"] = vectors if with_vectors else None
        if spec.get("fast_dropout"):
            config["components"]["tok2vec"]["model"]["fast_dropout"] = True
        config["components"]["tok2vec"]["model"].update(spec.get("model", {}))
        config = config.interpolate()
    else:
        config = init_config(lang="en", pipeline=[task], optimize=spec["config"], gpu=False)
        # The accuracy preset names en_core_web_lg, which we neither have nor use.
        config["paths"]["vectors"] = vectors if with_vectors else None
        config["initialize"]["vectors"] = vectors if with_vectors else None
        embed = config["components"].get("tok2vec", {}).get("model", {}).get("embed", {})
        if "include_static_vectors" in embed:
            embed["include_static_vectors"] = with_vectors
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    if task == "ner":
        examples = [
            Example.from_dict(nlp.make_doc(f"x {label} y"), {"entities": [(2, 2 + len(label), label)]})
            for label in NER_LABELS
        ]
    else:
        examples = [
            Example.from_dict(nlp.make_doc(f"text {label}"), {"cats": {l: float(l == label) for l in TEXTCAT_LABELS}})
            for label in TEXTCAT_LABELS
        ]
    nlp.initialize(lambda: examples)
    if spec.get("torchscript") or spec.get("optimize"):
        from .deploy import script_encoder

        script_encoder(nlp.get_pipe("tok2vec").model, optimize=spec.get("optimize", "none"))
    if spec.get("onnx"):
        import subprocess
        import sys
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            eager, onnx = Path(tmp) / "eager", Path(tmp) / "onnx"
            nlp.to_disk(eager)
            del nlp
            # In a child process, so that the exporter's memory is not in this one's peak RSS.
            command = [sys.executable, "-m", "spacy_encoder.cli", "deploy", "onnx", str(eager), str(onnx), "--optimize", spec["onnx"]]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command[1:])} failed: {(done.stdout + done.stderr).strip()[-2000:]}")
            nlp = spacy.load(onnx)
    return nlp


def load_average() -> float:
    """The 1-minute load average (0.0 where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def busy_reason(threshold: float, cpus: Optional[int] = None) -> Optional[str]:
    """Why the machine is too busy for speed figures (the 1-minute load average above
    `threshold` per CPU), or None when it is quiet."""
    cpus = cpus or os.cpu_count() or 1
    load = load_average()
    if load > threshold * cpus:
        return (
            f"load average {load:.2f} on {cpus} CPUs (above {threshold:.2f} per CPU): other work is "
            "running, and it slows spaCy's CNN and torch by different amounts, so the ratios would "
            "not be comparable"
        )
    return None


class OtherWork:
    """CPU time that processes other than this one and its children used between
    `start()` and `share()`, from /proc/stat (Linux; None elsewhere): how quiet the
    machine really was while the benchmark ran (the load average counts our own
    measurement processes too)."""

    def __init__(self) -> None:
        self._start: Optional[Tuple[float, float, float]] = None

    @staticmethod
    def _busy_seconds() -> Optional[float]:
        try:
            with open("/proc/stat") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own_seconds() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    def start(self) -> None:
        busy = self._busy_seconds()
        self._start = None if busy is None else (busy, self._own_seconds(), time.perf_counter())

    def share(self) -> Optional[float]:
        """Other processes' CPU time since `start()`, as a fraction of one CPU."""
        busy = self._busy_seconds()
        if self._start is None or busy is None:
            return None
        busy0, own0, t0 = self._start
        other = (busy - busy0) - (self._own_seconds() - own0)
        return max(0.0, other) / max(time.perf_counter() - t0, 1e-9)


def current_rss_mb() -> float:
    """Resident set size now (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_rss_mb()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --- Measurements, each run in its own process by `_child` -----------------------------


def measure_inference(name: str, texts: Sequence[str], batch_size: int, vectors: Optional[str] = None) -> Dict[str, Any]:
    nlp = build_pipeline(name, vectors)
    list(nlp.pipe(texts[:64], batch_size=batch_size))  # warm-up: allocator, kernels
    rss_before = peak_rss_mb()
    start = time.perf_counter()
    n_words = sum(len(doc) for doc in nlp.pipe(texts, batch_size=batch_size))
    seconds = time.perf_counter() - start
    return {"words": n_words, "seconds": seconds, "wps": n_words / seconds, "peak_rss_mb": peak_rss_mb(), "rss_after_load_mb": rss_before}


def measure_latency(name: str, texts: Sequence[str], vectors: Optional[str] = None) -> Dict[str, Any]:
    """One `nlp(text)` call per text, as a web service makes one per request: the
    median milliseconds per call, and words/s over all calls."""
    nlp = build_pipeline(name, vectors)
    for text in texts[:50]:  # warm-up: allocator, kernels, sessions
        nlp(text)
    times = []
    n_words = 0
    for text in texts:
        start = time.perf_counter()
        n_words += len(nlp(text))
        times.append(time.perf_counter() - start)
    return {"median_ms": 1000 * median(times), "wps": n_words / sum(times), "peak_rss_mb": peak_rss_mb()}


def measure_training(
    name: str, texts: Sequence[str], n_steps: int, batch_words: int, vectors: Optional[str] = None
) -> Dict[str, Any]:
    """nlp.update on batches of about `batch_words` words with silver annotations
    (every capitalised token an entity / alternating cats): cost, not accuracy."""
    from spacy.training import Example
    from spacy.training.batchers import minibatch_by_words

    nlp = build_pipeline(name, vectors)
    task = PIPELINES[name]["task"]
    examples = []
    for i, text in enumerate(texts):
        doc = nlp.make_doc(text)
        if task == "ner":
            ents = [(t.idx, t.idx + len(t), NER_LABELS[t.i % 4]) for t in doc if t.is_title]
            examples.append(Example.from_dict(doc, {"entities": ents}))
        else:
            label = TEXTCAT_LABELS[i % 2]
            examples.append(Example.from_dict(doc, {"cats": {l: float(l == label) for l in TEXTCAT_LABELS}}))
    optimizer = nlp.resume_training()
    batches = [b for b in minibatch_by_words(examples, size=batch_words) if b]
    words = 0
    seconds = 0.0
    for step in range(n_steps + 2):
        batch = batches[step % len(batches)]
        start = time.perf_counter()
        nlp.update(batch, sgd=optimizer, losses={})
        if step >= 2:  # the first steps pay for allocation and kernel set-up
            seconds += time.perf_counter() - start
            words += sum(len(eg) for eg in batch)
    return {"words": words, "seconds": seconds, "wps": words / seconds, "peak_rss_mb": peak_rss_mb()}


def measure_doc_length(name: str, n_tokens: int, repeats: int) -> Dict[str, Any]:
    """Time and memory of the tok2vec on single docs of `n_tokens` tokens."""
    nlp = build_pipeline(name)
    words = "The European Commission said on Thursday it disagreed with German advice .".split()
    text = " ".join(words[i % len(words)] for i in range(n_tokens))
    tok2vec = nlp.get_pipe("tok2vec")
    tok2vec(nlp.make_doc(" ".join(words * 10)))  # warm-up
    times = []
    for _ in range(repeats):
        doc = nlp.make_doc(text)
        start = time.perf_counter()
        tok2vec(doc)
        times.append(time.perf_counter() - start)
    return {"tokens": len(doc), "seconds": median(times), "peak_rss_mb": peak_rss_mb()}


def padding_waste(texts: Sequence[str], batcher: str, task: str = "ner") -> Dict[str, float]:
    """Padded positions / real tokens - 1 over spaCy's batching, with our length
    buckets and with one pad-to-longest batch (what a plain padded wrapper does).
    `batcher`: "pipe" (`nlp.pipe` at the config's batch size) or "train" (the config's
    training batcher); windows as the config's tok2vec cuts them."""
    import spacy
    from spacy.util import registry

    from .buckets import plan_windows

    config = ours_config(task)
    nlp = spacy.blank("en")
    lengths = [len(nlp.make_doc(t)) for t in texts]
    if batcher == "pipe":
        size = int(config["nlp"]["batch_size"])
        batches = [lengths[i : i + size] for i in range(0, len(lengths), size)]
    else:  # a batch item's length is its len(): stand-ins of the docs' lengths
        make = registry.resolve({"batcher": config["training"]["batcher"]})["batcher"]
        batches = [[len(item) for item in b] for b in make([range(n) for n in lengths])]
    model = config["components"]["tok2vec"]["model"]
    real = bucketed = naive = 0
    for batch in batches:
        plan = plan_windows(batch, int(model["max_length"]), int(model["window_stride"]))
        real += sum(batch)
        bucketed += sum((end - first) * width for first, end, width in plan.buckets)
        naive += len(plan.lengths) * (int(plan.lengths.max()) if len(plan.lengths) else 0)
    return {"bucketed": bucketed / real - 1.0, "pad_to_longest": naive / real - 1.0, "batches": len(batches)}


def _child(kind: str, args: Dict[str, Any]) -> Dict[str, Any]:
    """Run one measurement in a fresh interpreter and return its JSON result."""
    code = (
        "import json, sys, warnings\n"
        "warnings.filterwarnings('ignore', message=r'`torch\\.jit\\.\\w+` is deprecated')\n"
        "from spacy_encoder import bench\n"
        "args = json.loads(sys.stdin.read())\n"
        f"print(json.dumps(bench.{kind}(**args)))\n"
    )
    # Passive OpenMP waiting (read by libgomp when torch loads, hence the child's
    # environment): with the default spin-waiting, torch slows down >10x whenever
    # another process shares the cores; alone it makes no measurable difference.
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    proc = subprocess.run([sys.executable, "-c", code], input=json.dumps(args), capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind}({args.get('name')}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def interleaved(kind: str, names: Iterable[str], rounds: int, args: Dict[str, Any], log) -> Dict[str, Dict[str, Any]]:
    """Run `kind` for each pipeline, `rounds` times, rotating the order each round.
    Returns per pipeline the median words/sec and the largest peak RSS."""
    names = list(names)
    runs: Dict[str, List[Dict[str, Any]]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            result = _child(kind, {"name": name, **args})
            runs[name].append(result)
            latency = f"{result['median_ms']:.2f} ms per call, " if "median_ms" in result else ""
            log(f"  round {r + 1}/{rounds} {name}: {latency}{result['wps']:,.0f} words/s, peak RSS {result['peak_rss_mb']:,.0f} MB")
    summary: Dict[str, Dict[str, Any]] = {}
    for n, rs in runs.items():
        summary[n] = {
            "wps": median(x["wps"] for x in rs),
            "wps_runs": [round(x["wps"]) for x in rs],
            "peak_rss_mb": max(x["peak_rss_mb"] for x in rs),
        }
        if "median_ms" in rs[0]:
            summary[n]["median_ms"] = median(x["median_ms"] for x in rs)
            summary[n]["median_ms_runs"] = [round(x["median_ms"], 3) for x in rs]
    return summary
