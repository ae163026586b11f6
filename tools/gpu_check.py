"""The GPU check of issue 21: one prepared run on a lent CUDA machine.

    bash .ci/gpu-check prepare --budget-s N [limits]   # here: wheels, corpora, the device call
    bash .ci/gpu-check device [--budget-s N]            # there (here it records the environment)

`.ci/gpu-check` calls this file:

    python tools/gpu_check.py plan --budget-s N [--max-timeout-s S] [--max-travel-mib M]
        [--max-command-chars C] [--max-carry-paths P]
    python tools/gpu_check.py run [--budget-s N] [--steps env,pytest,train,infer,long]

`plan` prints the device call and checks it against the limits it is given (those of
whatever tool lends the machine; none is checked unless given). `run` writes
everything under $OUT (default ./gpu-check-out): gpu-check.json (all figures),
gpu-check.md (the same, readable) and log.txt (progress, pytest's output, tracebacks).
Both result files are rewritten after every step, so a run stopped at any point leaves
what it measured. A hard budget (--budget-s; none by default) bounds the whole run:
steps that no longer fit are skipped, saying so, and a watchdog stops the process
shortly after the budget whatever it is doing. Without CUDA it records the
environment, "no CUDA device: GPU steps skipped", and exits 0.

Steps: environment (versions, GPU, measured matmul rates) -> `pytest -m gpu
tests/test_gpu.py` -> NER training on CoNLL-03 with configs/ner.cfg in fp32 and in
mixed precision (words/s, peak memory, loss, model FLOPs utilisation) -> `nlp.pipe`
words/s on CoNLL-03 test, eager and TorchScript, at several batch sizes -> with the
budget left, a longer training and its dev/test F1.

Only the standard library is imported at module level: `plan` and the unit tests of
the FLOPs count need neither torch nor spaCy.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import hashlib
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import xml.etree.ElementTree as ElementTree
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = ".gpu-check"  # git-excluded; the CoNLL-03 DocBins and prepared.json
WHEEL_DIR = ".whl"  # git-excluded; spaCy's cp312 wheels and ours
CARRY = [WHEEL_DIR, DATA_DIR]
SPLITS = ("train", "dev", "test")
DEFAULT_OUT = "gpu-check-out"
INSTALL_GRACE_S = 75  # the wheel install and interpreter start, before the budget starts
WATCHDOG_GRACE_S = 25

ALL_STEPS = ("env", "pytest", "train", "infer", "long")

# Dense peak arithmetic rates of the chips, TFLOP/s, from NVIDIA's datasheets (SXM
# parts; the H200 and H100 SXM share them): fp32 without tensor cores, fp16/bf16 dense
# tensor cores (the sparse figures are twice these). torch runs fp32 matmuls without
# TF32 by default, and autocast runs them in fp16. Keyed by torch's device name.
DATASHEET_PEAK_TFLOPS: Dict[str, Dict[str, float]] = {
    "NVIDIA H200": {"fp32": 66.9, "fp16": 989.4},
    "NVIDIA H100 80GB HBM3": {"fp32": 66.9, "fp16": 989.4},
}


# --- FLOPs ------------------------------------------------------------------------------


def matmul_params_per_token(
    *,
    width: int,
    depth: int,
    ff_width: int,
    n_attrs: int,
    local_window: int,
    vectors_width: int = 0,
) -> int:
    """Weights of `TransformerTok2Vec` (v1, or v2 with vectors) that each token
    multiplies once per forward pass: every nn.Linear and nn.Conv1d weight. Embedding
    rows are looked up, not multiplied, so the hash tables do not count.

    embed mix: (F + [vectors]) * D * D, plus V * D for the vectors projection;
    input convolution: k * D * D (k = local_window; none when 0);
    each layer: k * D * D (convolution) + 3 * D * D (q, k, v) + D * D (output)
                + 2 * D * ff (feed-forward in and out).
    """
    D = width
    conv = local_window * D * D if local_window > 0 else 0
    mix = (n_attrs + (1 if vectors_width else 0)) * D * D + vectors_width * D
    layer = conv + 3 * D * D + D * D + 2 * D * ff_width
    return mix + conv + depth * layer


def encoder_flops_per_token(
    *,
    width: int,
    depth: int,
    n_heads: int,
    ff_width: int,
    n_attrs: int,
    local_window: int,
    ctx: float,
    vectors_width: int = 0,
) -> Dict[str, float]:
    """Forward and training FLOPs per token of the encoder (a multiply-add is 2 FLOPs).

    forward = 2 * matmul_params + 4 * depth * width * ctx, where the second term is
    attention: q.k over ctx keys and the weighted sum of ctx values, 2 * ctx * Dh each
    for each of the n_heads heads (n_heads * Dh = width), so the number of heads does
    not change it. ctx is the number of keys a token attends to: max_length at most,
    its window's length in fact. Biases, LayerNorm, GELU, softmax, rotary positions,
    hashing and the spaCy heads (the NER parser) are not counted.
    training = 3 * forward (the backward pass costs about twice the forward).
    """
    if width % n_heads:
        raise ValueError(f"width ({width}) must be divisible by n_heads ({n_heads})")
    params = matmul_params_per_token(
        width=width, depth=depth, ff_width=ff_width, n_attrs=n_attrs, local_window=local_window, vectors_width=vectors_width
    )
    dense = 2.0 * params
    attention = 4.0 * depth * width * ctx
    forward = dense + attention
    return {"matmul_params": params, "dense": dense, "attention": attention, "forward": forward, "train": 3.0 * forward}


def flops_from_config(model: Dict[str, Any], ctx: Optional[float] = None) -> Dict[str, float]:
    """`encoder_flops_per_token` for a `[components.tok2vec.model]` block of one of
    our TransformerTok2Vec configs; ctx defaults to its max_length (the most a token
    can attend to)."""
    return encoder_flops_per_token(
        width=int(model["width"]),
        depth=int(model["depth"]),
        n_heads=int(model["n_heads"]),
        ff_width=int(model["ff_width"]),
        n_attrs=len(model.get("attrs", ["NORM", "PREFIX", "SUFFIX", "SHAPE"])),
        local_window=int(model.get("local_window", 3)),
        vectors_width=int(model.get("vectors_width", 0)),
        ctx=float(model["max_length"] if ctx is None else ctx),
    )


def attention_context(doc_lengths: Iterable[int], max_length: int, stride: int) -> Tuple[float, float]:
    """(ctx, executed): the mean number of keys a token attends to in the window it
    takes its vector from (token-weighted), and the positions the encoder runs per
    real token (above 1 where long docs' windows overlap; bucket padding not counted).
    """
    from spacy_encoder.pytorch.windows import doc_windows

    tokens = keys = executed = 0
    for n in doc_lengths:
        for _, length, own_start, own_end in doc_windows(int(n), max_length, stride):
            tokens += own_end - own_start
            keys += (own_end - own_start) * length
            executed += length
    if not tokens:
        return 0.0, 0.0
    return keys / tokens, executed / tokens


def mfu(words_per_s: float, train_flops_per_token: float, peak_tflops: Optional[float]) -> Optional[float]:
    """Model FLOPs utilisation: achieved model FLOP/s over a peak rate (TFLOP/s)."""
    if not peak_tflops or not words_per_s:
        return None
    return words_per_s * train_flops_per_token / (peak_tflops * 1e12)


# --- The device call (plan) -------------------------------------------------------------


@dataclass(frozen=True)
class CallLimits:
    """What one device call may hold, as the tool that lends the machine states it;
    None: not checked."""

    timeout_s: Optional[float] = None  # seconds one command may run
    travel_mib: Optional[float] = None  # the tree and the carried paths together
    command_chars: Optional[int] = None
    carry_paths: Optional[int] = None


def device_call(budget_s: float) -> Dict[str, Any]:
    """The call's arguments: command, carry, timeout_s. `.ci/gpu-check device` installs
    the carried wheels itself, so the command stays this short; the timeout leaves the
    install and the watchdog their time beyond the budget."""
    return {
        "command": f"PYTHONUNBUFFERED=1 bash .ci/gpu-check device --budget-s {int(budget_s)}",
        "carry": list(CARRY),
        "timeout_s": int(budget_s) + INSTALL_GRACE_S + WATCHDOG_GRACE_S,
    }


def call_problems(call: Dict[str, Any], carry_bytes: int, tree_bytes: int, limits: CallLimits) -> List[str]:
    """What keeps the call from fitting `limits` (empty: it fits)."""
    problems = []
    if limits.command_chars is not None and len(call["command"]) > limits.command_chars:
        problems.append(f"the command is {len(call['command'])} characters (limit {limits.command_chars})")
    if limits.carry_paths is not None and len(call["carry"]) > limits.carry_paths:
        problems.append(f"{len(call['carry'])} carried paths (limit {limits.carry_paths})")
    if limits.timeout_s is not None and call["timeout_s"] > limits.timeout_s:
        most = int(limits.timeout_s) - INSTALL_GRACE_S - WATCHDOG_GRACE_S
        problems.append(f"timeout_s {call['timeout_s']} is above the limit {limits.timeout_s:g} (--budget-s {most} at most)")
    mib = 1024 * 1024
    if limits.travel_mib is not None and carry_bytes + tree_bytes > limits.travel_mib * mib:
        problems.append(
            f"the tree ({tree_bytes / mib:.1f} MiB) and the carried paths ({carry_bytes / mib:.1f} MiB) "
            f"exceed {limits.travel_mib:g} MiB together"
        )
    return problems


def path_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def tree_bytes(root: Path) -> int:
    """What travels besides the carried paths: tracked and untracked-not-ignored files."""
    done = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root, capture_output=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"git ls-files failed in {root}: {done.stderr.decode(errors='replace').strip()}")
    listed = done.stdout.split(b"\0")
    total = 0
    for name in listed:
        path = root / os.fsdecode(name)
        if name and path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    return done.stdout.strip("\n") if done.returncode == 0 else ""


def plan(root: Path, budget_s: float, limits: CallLimits = CallLimits()) -> int:
    """Check what `prepare` made, write DATA_DIR/prepared.json, print the device call."""
    problems = []
    wheels = sorted((root / WHEEL_DIR).glob("*.whl"))
    if not any(w.name.startswith("spacy-") for w in wheels):
        problems.append(f"no spaCy wheel in {WHEEL_DIR}/ (../shared/tools/gpu-wheels.sh)")
    if not any(w.name.startswith("spacy_encoder-") for w in wheels):
        problems.append(f"no spacy_encoder wheel in {WHEEL_DIR}/")
    for split in SPLITS:
        if not (root / DATA_DIR / f"{split}.spacy").is_file():
            problems.append(f"no {DATA_DIR}/{split}.spacy")
    call = device_call(budget_s)
    carry = sum(path_bytes(root / p) for p in CARRY if (root / p).exists())
    tree = tree_bytes(root)
    problems += call_problems(call, carry, tree, limits)
    prepared = {
        "prepared_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git(root, "rev-parse", "HEAD"),
        "uncommitted": [line for line in git(root, "status", "--porcelain").splitlines() if line],
        "wheels": [{"name": w.name, "bytes": w.stat().st_size, "sha256": sha256(w)} for w in wheels],
        "corpora": {s: path_bytes(root / DATA_DIR / f"{s}.spacy") for s in SPLITS if (root / DATA_DIR / f"{s}.spacy").is_file()},
        "call": call,
        "limits": asdict(limits),
        "carry_bytes": carry,
        "tree_bytes": tree,
    }
    if (root / DATA_DIR).is_dir():
        (root / DATA_DIR / "prepared.json").write_text(json.dumps(prepared, indent=2) + "\n", encoding="utf8")
    mib = 1024 * 1024
    print(f"carry: {carry / mib:.1f} MiB in {', '.join(CARRY)}; tree: {tree / mib:.1f} MiB; "
          f"together {(carry + tree) / mib:.1f} MiB; command: {len(call['command'])} characters")
    if problems:
        for problem in problems:
            print(f"gpu-check prepare: {problem}", file=sys.stderr)
        return 1
    print("\nThe device call (command, carry, timeout_s):")
    print(json.dumps(call))
    print(f"\nIt writes $OUT/gpu-check.json, gpu-check.md and log.txt; it ends inside {call['timeout_s']} s.")
    return 0


# --- The run: report, budget, watchdog ---------------------------------------------------


class Report:
    """The results, written to OUT after every step (atomically), and a log."""

    def __init__(self, out: Path, budget_s: Optional[float]) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.t0 = time.monotonic()
        self.deadline = math.inf if budget_s is None else self.t0 + budget_s
        self.lock = threading.RLock()
        self.current = "start"
        self.watchdog: Optional[threading.Timer] = None
        self.data: Dict[str, Any] = {
            "schema": 1,
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "budget_s": budget_s,
            "gpu": None,
            "summary": "",
            "steps": {},
            "notes": [],
        }
        self._log = (out / "log.txt").open("a", encoding="utf8", buffering=1)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def log(self, message: str) -> None:
        line = f"[{self.elapsed():7.1f}s] {message}"
        with self.lock:
            print(line, flush=True)
            self._log.write(line + "\n")

    def log_raw(self, text: str) -> None:
        with self.lock:
            self._log.write(text if text.endswith("\n") else text + "\n")

    def note(self, message: str) -> None:
        with self.lock:
            self.data["notes"].append(message)
        self.log(f"note: {message}")

    def step(self, name: str) -> Dict[str, Any]:
        with self.lock:
            record = self.data["steps"].setdefault(name, {"status": "running"})
        return record

    def skip(self, name: str, reason: str) -> None:
        with self.lock:
            self.data["steps"][name] = {"status": "skipped", "reason": reason}
        self.log(f"{name}: skipped ({reason})")
        self.write()

    def write(self) -> None:
        with self.lock:
            self.data["elapsed_s"] = round(self.elapsed(), 1)
            text = json.dumps(self.data, indent=2, default=_jsonable) + "\n"
            md = render_markdown(self.data)
            for name, content in (("gpu-check.json", text), ("gpu-check.md", md)):
                tmp = self.out / f".{name}.tmp"
                tmp.write_text(content, encoding="utf8")
                os.replace(tmp, self.out / name)

    def close(self) -> None:
        with self.lock:
            self._log.close()


def _jsonable(value: Any) -> Any:
    try:
        return float(value)
    except Exception:
        return str(value)


def run_step(report: Report, name: str, func: Callable[[Dict[str, Any]], None]) -> bool:
    """Run one step into its record; a failure is recorded (with its traceback in the
    log) and the run goes on."""
    record = report.step(name)
    report.current = name
    report.log(f"{name}: start ({report.remaining():.0f} s of the budget left)")
    start = time.monotonic()
    try:
        func(record)
        record["status"] = record.get("status") if record.get("status") not in (None, "running") else "ok"
    except Exception as err:
        record["status"] = "failed"
        record["error"] = f"{type(err).__name__}: {' '.join(str(err).split())[:600]}"
        report.log(f"{name}: FAILED {record['error']}")
        report.log_raw(traceback.format_exc())
    record["seconds"] = round(time.monotonic() - start, 1)
    report.log(f"{name}: {record['status']} in {record['seconds']} s")
    report.write()
    return record["status"] == "ok"


def start_watchdog(report: Report, grace_s: float) -> threading.Timer:
    """Stop the process shortly after the budget, whatever it is doing, leaving the
    results written so far (and saying where it stopped)."""

    def overrun() -> None:
        try:
            with report.lock:
                step = report.data["steps"].get(report.current)
                if isinstance(step, dict) and step.get("status") == "running":
                    step["status"] = "failed"
                    step["error"] = "stopped by the watchdog: the run passed its budget in this step"
                report.data["summary"] = (
                    f"STOPPED: the run passed its budget ({report.data['budget_s']} s) by {grace_s:.0f} s "
                    f"in step '{report.current}'; later steps did not run."
                )
                report.log(report.data["summary"])
                report.write()
        finally:
            os._exit(3)

    timer = threading.Timer(max(0.0, report.remaining()) + grace_s, overrun)
    timer.daemon = True
    timer.start()
    report.watchdog = timer
    return timer


# --- Steps ------------------------------------------------------------------------------


def step_environment(report: Report, record: Dict[str, Any], measure_peaks: bool) -> None:
    import numpy
    import torch

    record["python"] = sys.version.split()[0]
    record["platform"] = platform.platform()
    record["torch"] = torch.__version__
    record["torch_cuda"] = torch.version.cuda
    record["numpy"] = numpy.__version__
    record["cuda_available"] = bool(torch.cuda.is_available())
    record["torch_matmul_allow_tf32"] = bool(torch.backends.cuda.matmul.allow_tf32)
    record["cudnn_allow_tf32"] = bool(torch.backends.cudnn.allow_tf32)
    try:
        import cupy

        record["cupy"] = cupy.__version__
    except Exception as err:
        record["cupy"] = f"not importable ({type(err).__name__}: {err})"
    import spacy
    import thinc
    import thinc.util

    record["spacy"] = spacy.__version__
    record["thinc"] = thinc.__version__
    record["thinc_has_cupy_gpu"] = bool(getattr(thinc.util, "has_cupy_gpu", False))
    import spacy_encoder

    package = Path(spacy_encoder.__file__).resolve().parent
    record["spacy_encoder_from"] = str(package)
    try:  # through the wheel's entry points: no import of ours needed
        record["architectures_registered"] = callable(spacy.registry.architectures.get("spacy-encoder.TransformerTok2Vec.v1"))
    except Exception as err:
        record["architectures_registered"] = f"no ({type(err).__name__}: {' '.join(str(err).split())[:300]})"
    record["package_matches_tree"] = package_matches_tree(package, REPO / "spacy_encoder")
    prepared = REPO / DATA_DIR / "prepared.json"
    if prepared.is_file():
        info = json.loads(prepared.read_text(encoding="utf8"))
        record["prepared"] = {k: info.get(k) for k in ("prepared_at", "commit", "uncommitted")}
    if not record["cuda_available"]:
        return
    props = torch.cuda.get_device_properties(0)
    record["gpu_name"] = torch.cuda.get_device_name(0)
    record["gpu_count"] = torch.cuda.device_count()
    record["gpu_capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
    record["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
    record["gpu_multiprocessors"] = props.multi_processor_count
    record["datasheet_peak_tflops"] = DATASHEET_PEAK_TFLOPS.get(record["gpu_name"])
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20,
        )
        record["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except Exception as err:
        record["nvidia_smi"] = f"not run ({type(err).__name__})"
    if measure_peaks:
        try:
            record["measured_matmul_tflops"] = measure_matmul_rates()
        except Exception as err:
            record["measured_matmul_tflops"] = None
            record["measured_matmul_error"] = f"{type(err).__name__}: {err}"
    torch.cuda.empty_cache()


def package_matches_tree(package: Path, tree: Path) -> Any:
    """Whether the imported spacy_encoder (the carried wheel) has the working tree's
    sources: True, 'imported from the working tree', or the files that differ."""
    if package == tree.resolve():
        return "imported from the working tree"
    differ = []
    for source in sorted(tree.rglob("*.py")):
        rel = source.relative_to(tree)
        installed = package / rel
        if not installed.is_file() or installed.read_bytes() != source.read_bytes():
            differ.append(str(rel))
    return True if not differ else differ


def measure_matmul_rates() -> Dict[str, float]:
    """The matmul rates this GPU reaches through torch (TFLOP/s, mean of timed reps
    after warm-ups): a ceiling measured in the same run as the figures it bounds."""
    import torch

    rates = {}
    for label, dtype, n, reps in (("fp32", torch.float32, 4096, 10), ("fp16", torch.float16, 8192, 10)):
        a = torch.randn(n, n, device="cuda", dtype=dtype)
        b = torch.randn(n, n, device="cuda", dtype=dtype)
        for _ in range(3):
            a @ b
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        torch.cuda.synchronize()
        rates[label] = round(2 * n**3 * reps / (time.perf_counter() - start) / 1e12, 1)
        del a, b
    return rates


def step_pytest(report: Report, record: Dict[str, Any], timeout_s: float) -> None:
    """`pytest -m gpu tests/test_gpu.py` in a subprocess, its output to the log."""
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        cmd = [
            sys.executable, "-m", "pytest", "-m", "gpu", "tests/test_gpu.py", "-q", "-p", "no:cacheprovider",
            "-rfEs", f"--junitxml={junit}",
        ]
        record["command"] = " ".join(cmd[1:])
        report.log(f"pytest: {record['command']} (timeout {timeout_s:.0f} s)")
        try:
            done = subprocess.run(
                cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout_s,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            output, rc = done.stdout + done.stderr, done.returncode
        except subprocess.TimeoutExpired as err:
            output = (err.stdout or b"").decode("utf8", "replace") if isinstance(err.stdout, bytes) else (err.stdout or "")
            rc = None
            record["timed_out"] = True
        report.log_raw("---- pytest output ----\n" + output + "---- end of pytest output ----")
        record["returncode"] = rc
        record["tail"] = output.strip().splitlines()[-15:]
        if junit.is_file():
            record.update(junit_counts(junit))
    if rc is None:
        raise TimeoutError(f"pytest did not finish within {timeout_s:.0f} s")
    if rc != 0:
        record["status"] = "failed"
        record["error"] = f"pytest exited with {rc}: {record.get('failed', '?')} failed, {record.get('errors', '?')} errors"


def junit_counts(path: Path) -> Dict[str, Any]:
    root = ElementTree.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = {key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")}
    outcomes = {}
    for case in root.iter("testcase"):
        name = case.get("name", "?")
        kinds = [child.tag for child in case]
        outcomes[name] = next((k for k in ("failure", "error", "skipped") if k in kinds), "passed")
        skipped = case.find("skipped")
        if skipped is not None and skipped.get("message"):
            outcomes[name] += f": {skipped.get('message')}"
    return {
        "passed": total["tests"] - total["failures"] - total["errors"] - total["skipped"],
        "failed": total["failures"],
        "errors": total["errors"],
        "skipped": total["skipped"],
        "tests": outcomes,
    }


def sync() -> None:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def peak_memory_mib(reset: bool = False) -> Optional[float]:
    import torch

    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return None
    if reset:
        torch.cuda.reset_peak_memory_stats()
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def training_config(args: argparse.Namespace, *, mixed: bool, batch_words: Optional[int], gpu: bool) -> Any:
    """configs/ner.cfg on CoNLL-03, as `spacy train --gpu-id 0 --system.gpu_allocator
    pytorch [--components.tok2vec.model.mixed_precision true]` would read it."""
    from spacy.util import load_config

    data = REPO / args.data
    for split in SPLITS:
        if not (data / f"{split}.spacy").is_file():
            raise FileNotFoundError(f"no {data / split}.spacy: run `bash .ci/gpu-check prepare` and carry {DATA_DIR}")
    config = load_config(REPO / "configs" / "ner.cfg")
    config["paths"]["train"] = str(data / "train.spacy")
    config["paths"]["dev"] = str(data / "dev.spacy")
    config["system"]["gpu_allocator"] = "pytorch" if gpu else None
    config["components"]["tok2vec"]["model"]["mixed_precision"] = bool(mixed)
    if args.train_limit:
        config["corpora"]["train"]["limit"] = args.train_limit
    if args.eval_limit:
        config["corpora"]["dev"]["limit"] = args.eval_limit
    if batch_words:
        config["training"]["batcher"] = {
            "@batchers": "spacy.batch_by_words.v1", "size": int(batch_words), "tolerance": 0.2,
            "discard_oversize": False, "get_length": None,
        }
    return config


class Trainer:
    """spaCy's training step (spacy.training.loop.train_while_improving): update
    without the optimizer, then each component's finish_update, then the schedules;
    `nlp.update(sgd=...)` would apply the tok2vec's update one step late (TRAPS.md)."""

    def __init__(self, config: Any, gpu: bool) -> None:
        from spacy.schemas import ConfigSchemaTraining
        from spacy.training.initialize import init_nlp
        from spacy.training.loop import create_train_batches
        from spacy.util import registry, resolve_dot_names

        self.nlp = init_nlp(config, use_gpu=0 if gpu else -1)
        resolved = self.nlp.config.interpolate()
        T = registry.resolve(resolved["training"], schema=ConfigSchemaTraining)
        self.train_corpus, self.dev_corpus = resolve_dot_names(resolved, [T["train_corpus"], T["dev_corpus"]])
        self.optimizer = T["optimizer"]
        dropout = T["dropout"]
        self.dropout = float(dropout) if isinstance(dropout, (int, float)) else 0.1
        self.batches = create_train_batches(self.nlp, self.train_corpus, T["batcher"], T["max_epochs"])
        self.steps = 0

    def step(self) -> Tuple[int, Dict[str, float], List[int]]:
        _, batch = next(self.batches)
        losses: Dict[str, float] = {}
        self.nlp.update(batch, drop=self.dropout, losses=losses, sgd=False)
        for _, proc in self.nlp.pipeline:
            if hasattr(proc, "finish_update") and getattr(proc, "model", None) not in (True, False, None):
                proc.finish_update(self.optimizer)
        self.optimizer.step_schedules()
        self.steps += 1
        lengths = [len(eg.predicted) for eg in batch]
        return sum(lengths), {k: float(v) for k, v in losses.items()}, lengths


def step_train(
    report: Report, record: Dict[str, Any], args: argparse.Namespace, env: Dict[str, Any], *, mixed: bool, gpu: bool,
    slice_s: float, state: Dict[str, Any],
) -> None:
    """A fixed number of steps (or the time slice, whichever ends first): words/s over
    the steps after the warm-up, peak GPU memory, losses, model FLOPs utilisation."""
    deadline = time.monotonic() + slice_s
    config = training_config(args, mixed=mixed, batch_words=args.train_batch_words, gpu=gpu)
    model_cfg = config["components"]["tok2vec"]["model"]
    record.update(
        precision="mixed (fp16 autocast, grad scaler)" if mixed else "fp32",
        batch="spacy.batch_by_words.v1, size %d words" % args.train_batch_words,
        steps_asked=args.train_steps, warmup_steps=args.warmup_steps,
    )
    trainer = Trainer(config, gpu)
    report.log(f"train {'mixed' if mixed else 'fp32'}: pipeline ready; training")
    peak_memory_mib(reset=True)
    per_step: List[Dict[str, float]] = []
    timed_words = 0
    doc_lengths: List[int] = []
    start = None
    while trainer.steps < args.train_steps:
        if trainer.steps == args.warmup_steps:
            sync()
            start = time.perf_counter()
        words, losses, lengths = trainer.step()
        per_step.append({"words": words, **losses})
        if start is not None:
            timed_words += words
            doc_lengths += lengths
        if time.monotonic() > deadline:
            record["stopped_early"] = f"time slice of {slice_s:.0f} s used up after {trainer.steps} steps"
            break
    sync()
    seconds = time.perf_counter() - start if start is not None else 0.0
    record["steps_run"] = trainer.steps
    record["timed_steps"] = max(0, trainer.steps - args.warmup_steps)
    record["timed_words"] = timed_words
    record["timed_seconds"] = round(seconds, 2)
    record["words_per_s"] = round(timed_words / seconds, 1) if seconds > 0 else None
    record["peak_gpu_memory_mib"] = peak_memory_mib()
    ner_per_word = [s.get("ner", float("nan")) / max(1, s["words"]) for s in per_step]
    record["losses_finite"] = all(math.isfinite(v) for s in per_step for k, v in s.items() if k != "words")
    k = min(20, max(1, len(per_step) // 4))
    record["ner_loss_per_word_first"] = round(sum(ner_per_word[:k]) / k, 5) if per_step else None
    record["ner_loss_per_word_last"] = round(sum(ner_per_word[-k:]) / k, 5) if per_step else None
    record["loss_window_steps"] = k
    max_length, stride = int(model_cfg["max_length"]), int(model_cfg["window_stride"])
    ctx, executed = attention_context(doc_lengths, max_length, stride) if doc_lengths else (0.0, 0.0)
    flops = flops_from_config(dict(model_cfg), ctx=ctx)
    record["attention_ctx_mean"] = round(ctx, 1)
    record["positions_run_per_token"] = round(executed, 3)
    record["forward_flops_per_token"] = flops["forward"]
    record["train_flops_per_token"] = flops["train"]
    if record["words_per_s"]:
        record["achieved_tflops"] = round(record["words_per_s"] * flops["train"] / 1e12, 4)
        kind = "fp16" if mixed else "fp32"
        datasheet = (env.get("datasheet_peak_tflops") or {}).get(kind)
        measured = (env.get("measured_matmul_tflops") or {}).get(kind)
        record["peak_kind"] = kind
        record["mfu_vs_datasheet"] = _round(mfu(record["words_per_s"], flops["train"], datasheet), 6)
        record["mfu_vs_measured_matmul"] = _round(mfu(record["words_per_s"], flops["train"], measured), 6)
    if not record["losses_finite"]:
        record["status"] = "failed"
        record["error"] = "a loss was not finite"
    state["mixed" if mixed else "fp32"] = trainer.nlp


def _round(value: Optional[float], digits: int) -> Optional[float]:
    return None if value is None else round(value, digits)


def sentence_texts(args: argparse.Namespace, nlp: Any) -> List[str]:
    """CoNLL-03 test as one text per sentence (tokens joined by spaces), repeated
    `--infer-repeat` times so that the largest batch size fills a batch."""
    from spacy.tokens import DocBin

    docs = DocBin().from_disk(REPO / args.data / "test.spacy").get_docs(nlp.vocab)
    texts = [" ".join(t.text for t in sent) for doc in docs for sent in doc.sents]
    if args.infer_limit:
        texts = texts[: args.infer_limit]
    return texts * max(1, args.infer_repeat)


def host(array: Any) -> Any:
    return array.get() if hasattr(array, "get") else array


def step_infer(report: Report, record: Dict[str, Any], args: argparse.Namespace, *, slice_s: float, state: Dict[str, Any]) -> None:
    """nlp.pipe words/s on CoNLL-03 test, eager and TorchScript (and eager mixed
    precision), per batch size; the scripted encoder's vectors against eager's."""
    import numpy

    from spacy_encoder.deploy import script_encoder

    deadline = time.monotonic() + slice_s
    nlp = state.get("fp32")
    if nlp is None:
        raise RuntimeError("no trained fp32 pipeline (the fp32 training step did not finish)")
    texts = sentence_texts(args, nlp)
    record["texts"] = len(texts)
    record["note"] = f"one text per CoNLL-03 test sentence, the {len(texts) // max(1, args.infer_repeat)} sentences x {args.infer_repeat}"
    rows: List[Dict[str, Any]] = []
    record["rows"] = rows

    def measure(variant: str, model: Any) -> None:
        for batch_size in args.batch_sizes:
            row: Dict[str, Any] = {"variant": variant, "batch_size": batch_size}
            rows.append(row)
            if time.monotonic() > deadline:
                row["skipped"] = "inference time slice used up"
                continue
            list(model.pipe(texts[: min(len(texts), batch_size)], batch_size=batch_size))  # warm-up
            sync()
            peak_memory_mib(reset=True)
            start = time.perf_counter()
            words = sum(len(doc) for doc in model.pipe(texts, batch_size=batch_size))
            sync()
            seconds = time.perf_counter() - start
            row.update(words=words, seconds=round(seconds, 3), words_per_s=round(words / seconds, 1),
                       peak_gpu_memory_mib=peak_memory_mib())
            report.log(f"infer {variant} batch {batch_size}: {row['words_per_s']} words/s")
            report.write()

    def probe() -> Tuple[List[Any], List[Any]]:
        docs = list(nlp.pipe(texts[:64]))
        return [host(doc.tensor) for doc in docs], [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in docs]

    eager, eager_ents = probe()
    measure("eager fp32", nlp)
    script_encoder(nlp.get_pipe("tok2vec").model)
    scripted, scripted_ents = probe()
    diffs = [float(numpy.abs(a - b).max()) for a, b in zip(eager, scripted) if a.size]
    record["scripted_vs_eager_max_abs_diff"] = max(diffs) if diffs else 0.0
    record["scripted_vs_eager_same_entities"] = eager_ents == scripted_ents
    measure("scripted fp32", nlp)
    if "mixed" in state:
        measure("eager mixed", state["mixed"])
    if record["scripted_vs_eager_max_abs_diff"] > 1e-4 or not record["scripted_vs_eager_same_entities"]:
        record["status"] = "failed"
        record["error"] = f"scripted differs from eager (max |diff| {record['scripted_vs_eager_max_abs_diff']:.2e})"


def step_long(report: Report, record: Dict[str, Any], args: argparse.Namespace, *, gpu: bool, train_s: float) -> None:
    """configs/ner.cfg as shipped (fp32, its compounding batcher and learning-rate
    schedule) for `train_s` seconds, then dev and test scores (nlp.evaluate)."""
    from spacy.training import Corpus

    config = training_config(args, mixed=False, batch_words=None, gpu=gpu)
    trainer = Trainer(config, gpu)
    record["precision"] = "fp32"
    record["batch"] = "configs/ner.cfg's (compounding 100 to 1000 words)"
    record["train_seconds_asked"] = round(train_s, 1) if math.isfinite(train_s) else None  # None: no budget
    corpus_words = sum(len(eg.predicted) for eg in trainer.train_corpus(trainer.nlp))
    deadline = time.monotonic() + train_s
    words = 0
    losses: List[float] = []
    sync()
    start = time.perf_counter()
    while time.monotonic() < deadline and trainer.steps < args.long_max_steps:
        n, step_losses, _ = trainer.step()
        words += n
        losses.append(step_losses.get("ner", float("nan")) / max(1, n))
    sync()
    seconds = time.perf_counter() - start
    record.update(steps=trainer.steps, words=words, seconds=round(seconds, 1),
                  words_per_s=round(words / seconds, 1) if seconds else None,
                  epochs=round(words / max(1, corpus_words), 2),
                  ner_loss_per_word_last=round(sum(losses[-20:]) / max(1, len(losses[-20:])), 5) if losses else None,
                  losses_finite=all(math.isfinite(v) for v in losses))
    report.log(f"long: {trainer.steps} steps in {seconds:.0f} s; evaluating")
    nlp = trainer.nlp
    dev = list(trainer.dev_corpus(nlp))
    test = list(Corpus(str(REPO / args.data / "test.spacy"), limit=args.eval_limit or 0)(nlp))
    for name, examples in (("dev", dev), ("test", test)):
        start = time.perf_counter()
        scores = nlp.evaluate(examples)
        record[name] = {
            "docs": len(examples),
            "ents_f": _round(scores.get("ents_f"), 4),
            "ents_p": _round(scores.get("ents_p"), 4),
            "ents_r": _round(scores.get("ents_r"), 4),
            "seconds": round(time.perf_counter() - start, 1),
        }
        report.log(f"long: {name} ents_f {record[name]['ents_f']}")


def free(state: Dict[str, Any]) -> None:
    state.clear()
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
    except Exception:
        pass


def run(args: argparse.Namespace) -> int:
    out = Path(args.out or os.environ.get("OUT") or (REPO / DEFAULT_OUT))
    report = Report(out, args.budget_s)
    if args.budget_s is not None:
        start_watchdog(report, WATCHDOG_GRACE_S)
    logging.basicConfig(
        level=logging.INFO, format="%(name)s %(levelname)s: %(message)s",
        handlers=[logging.StreamHandler(report._log)],
    )
    logging.captureWarnings(True)
    os.chdir(REPO)
    steps = set(args.steps)
    report.data["args"] = {k: v for k, v in vars(args).items() if k != "func"}
    report.log(f"gpu-check: results to {out}; budget {budget_text(args.budget_s)}; steps {', '.join(s for s in ALL_STEPS if s in steps)}")
    env = report.step("environment")
    run_step(report, "environment", lambda rec: step_environment(report, rec, measure_peaks=not args.allow_cpu))
    cuda = bool(env.get("cuda_available"))
    report.data["gpu"] = cuda
    later = ["pytest", "train_fp32", "train_mixed", "inference", "long_training"]
    if env.get("status") != "ok":
        for name in later:
            report.skip(name, "the environment step failed")
        return finish(report, 1)
    if not cuda and not args.allow_cpu:
        report.note("no CUDA device: GPU steps skipped")
        for name in later:
            report.skip(name, "no CUDA device (torch.cuda.is_available() is False)")
        return finish(report, 0)
    if not cuda:
        report.note("--allow-cpu: the GPU steps run on CPU (a smoke test of this script; no figure means anything)")
    gpu = cuda

    def fits(name: str, needed_s: float) -> bool:
        left = report.remaining()
        if left < needed_s:
            report.skip(name, f"budget: {left:.0f} s of {args.budget_s:g} s left, the step needs about {needed_s:.0f} s")
            return False
        return True

    def slice_of(configured: float) -> float:
        return max(1.0, min(configured, report.remaining() - args.final_reserve_s))

    if "pytest" not in steps:
        report.skip("pytest", "not asked for (--steps)")
    elif fits("pytest", 30):
        run_step(report, "pytest", lambda rec: step_pytest(report, rec, slice_of(args.pytest_timeout_s)))
    if gpu:
        try:
            import spacy
            from thinc.api import set_gpu_allocator

            spacy.require_gpu(0)
            set_gpu_allocator("pytorch")
        except Exception as err:
            reason = f"thinc cannot use the GPU ({type(err).__name__}: {err}); spaCy on GPU needs CuPy"
            for name in later[1:]:
                report.skip(name, reason)
            return finish(report, 1)
    state: Dict[str, Any] = {}
    for name, mixed in (("train_fp32", False), ("train_mixed", True)):
        if "train" not in steps:
            report.skip(name, "not asked for (--steps)")
        elif fits(name, 30):
            run_step(report, name, lambda rec, mixed=mixed: step_train(
                report, rec, args, env, mixed=mixed, gpu=gpu, slice_s=slice_of(args.train_slice_s), state=state))
    if "infer" not in steps:
        report.skip("inference", "not asked for (--steps)")
    elif "fp32" not in state:
        report.skip("inference", "needs the pipeline of the fp32 training step, which did not finish")
    elif fits("inference", 20):
        run_step(report, "inference", lambda rec: step_infer(report, rec, args, slice_s=slice_of(args.infer_slice_s), state=state))
    free(state)
    if "long" not in steps:
        report.skip("long_training", "not asked for (--steps)")
    elif fits("long_training", args.long_min_s + args.eval_reserve_s + args.final_reserve_s):
        train_s = report.remaining() - args.eval_reserve_s - args.final_reserve_s
        run_step(report, "long_training", lambda rec: step_long(report, rec, args, gpu=gpu, train_s=train_s))
    failed = [n for n, s in report.data["steps"].items() if s.get("status") == "failed"]
    return finish(report, 1 if failed else 0)


def finish(report: Report, rc: int) -> int:
    steps = report.data["steps"]
    counts: Dict[str, int] = {}
    for record in steps.values():
        counts[record.get("status", "?")] = counts.get(record.get("status", "?"), 0) + 1
    failed = [n for n, s in steps.items() if s.get("status") == "failed"]
    head = "no CUDA device: GPU steps skipped" if report.data["gpu"] is False and not report.data["args"].get("allow_cpu") else (
        f"FAILED: {', '.join(failed)}" if failed else "all steps that ran passed")
    report.data["summary"] = f"{head} ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))})"
    report.data["returncode"] = rc
    if report.watchdog is not None:
        report.watchdog.cancel()
    report.log(f"gpu-check: {report.data['summary']}")
    report.write()
    print("\n" + (report.out / "gpu-check.md").read_text(encoding="utf8"), flush=True)
    logging.getLogger().handlers.clear()
    report.close()
    return rc


# --- Markdown ---------------------------------------------------------------------------


FLOPS_FORMULA = """\
Model FLOPs count the encoder only (a multiply-add is 2 FLOPs; biases, LayerNorm, GELU,
softmax, rotary positions, hashing and the NER parser are left out):

    forward per token   F = 2 * P + 4 * L * D * ctx
    P (matmul weights)  = A * D^2                       (embedding mix, A = 4 attributes)
                        + k * D^2                       (input convolution, k = local_window)
                        + L * (k * D^2 + 4 * D^2 + 2 * D * ff)   (per layer: conv, q/k/v + output, feed-forward)
    training per token  = 3 * F                         (backward about 2 * forward)
    MFU                 = words/s * 3 * F / peak FLOP/s

ctx is the mean number of keys a token attends to in its window (CoNLL-03 documents,
windows of max_length = 256 tokens every 192); positions the encoder runs more than once
(overlapping windows) and bucket padding are not model FLOPs. Peaks: NVIDIA's datasheet
(H200/H100 SXM, dense: fp32 66.9 TFLOP/s, fp16 989.4 TFLOP/s; torch runs fp32 matmuls
without TF32 by default, autocast runs them in fp16), and the matmul rates measured in
the same run (4096^3 fp32, 8192^3 fp16). For configs/ner.cfg (D = 128, L = 2, ff = 512,
k = 3) at ctx = 256: F = 1.47 MFLOP per token, training 4.42 MFLOP per token."""


def not_run(step: Optional[Dict[str, Any]]) -> Optional[str]:
    """The report's line for a step that did not run ("not run", "skipped: why"), or None."""
    if not step:
        return "not run"
    if step.get("status") == "skipped":
        return f"skipped: {step.get('reason')}"
    return None


def render_markdown(data: Dict[str, Any]) -> str:
    steps = data.get("steps", {})
    lines = ["# GPU check (issue 21)", ""]
    lines.append(f"Started {data.get('started')}, budget {budget_text(data.get('budget_s'))}, elapsed {data.get('elapsed_s')} s.")
    if data.get("summary"):
        lines += ["", f"**{data['summary']}**"]
    for note in data.get("notes", []):
        lines.append(f"- {note}")
    env = steps.get("environment", {})
    lines += ["", "## Environment", ""]
    for key in ("python", "torch", "torch_cuda", "cupy", "numpy", "spacy", "thinc", "cuda_available", "thinc_has_cupy_gpu",
                "gpu_name", "gpu_capability", "gpu_memory_gib", "gpu_multiprocessors", "nvidia_smi",
                "torch_matmul_allow_tf32", "datasheet_peak_tflops", "measured_matmul_tflops", "spacy_encoder_from",
                "architectures_registered", "package_matches_tree", "prepared", "status", "error"):
        if key in env:
            lines.append(f"- {key}: {env[key]}")
    pytest_rec = steps.get("pytest")
    if pytest_rec:
        lines += ["", "## pytest -m gpu tests/test_gpu.py", ""]
        if pytest_rec.get("status") == "skipped":
            lines.append(f"skipped: {pytest_rec.get('reason')}")
        else:
            lines.append(
                f"{pytest_rec.get('status')}: {pytest_rec.get('passed', '?')} passed, {pytest_rec.get('failed', '?')} failed, "
                f"{pytest_rec.get('errors', '?')} errors, {pytest_rec.get('skipped', '?')} skipped "
                f"({pytest_rec.get('seconds', '?')} s)" + (f"; {pytest_rec['error']}" if pytest_rec.get("error") else "")
            )
            for name, outcome in (pytest_rec.get("tests") or {}).items():
                lines.append(f"- {name}: {outcome}")
    lines += ["", "## Training: configs/ner.cfg on CoNLL-03 train", ""]
    header = ("precision", "status", "timed steps", "words/s", "peak GPU MiB", "loss/word first -> last", "finite",
              "ctx", "train FLOP/token", "TFLOP/s", "MFU (datasheet)", "MFU (measured matmul)")
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in ("train_fp32", "train_mixed"):
        rec = steps.get(name)
        if not rec:
            continue
        if rec.get("status") == "skipped":
            lines.append(f"| {name} | skipped: {rec.get('reason')} |" + " |" * (len(header) - 2))
            continue
        lines.append("| " + " | ".join(str(x) for x in (
            rec.get("precision", name), rec.get("status"), rec.get("timed_steps"), rec.get("words_per_s"),
            rec.get("peak_gpu_memory_mib"), f"{rec.get('ner_loss_per_word_first')} -> {rec.get('ner_loss_per_word_last')}",
            rec.get("losses_finite"), rec.get("attention_ctx_mean"), _fmt(rec.get("train_flops_per_token")),
            rec.get("achieved_tflops"), _pct(rec.get("mfu_vs_datasheet")), _pct(rec.get("mfu_vs_measured_matmul")),
        )) + " |")
    extra = [f"- {n}: {steps[n][k]}" for n in ("train_fp32", "train_mixed") if n in steps
             for k in ("batch", "stopped_early", "error") if steps[n].get(k)]
    if extra:
        lines += [""] + extra
    lines += ["", FLOPS_FORMULA]
    infer = steps.get("inference")
    lines += ["", "## Inference: nlp.pipe on CoNLL-03 test", ""]
    if not_run(infer):
        lines.append(not_run(infer))
    else:
        lines.append(f"{infer.get('status')}; {infer.get('note', '')}" + (f"; {infer['error']}" if infer.get("error") else ""))
        if "scripted_vs_eager_max_abs_diff" in infer:
            lines.append(f"scripted vs eager: max |diff| {infer['scripted_vs_eager_max_abs_diff']:.2e}, "
                         f"same entities: {infer.get('scripted_vs_eager_same_entities')}")
        lines += ["", "| variant | batch size | words/s | seconds | peak GPU MiB |", "|---|---|---|---|---|"]
        for row in infer.get("rows", []):
            if row.get("skipped"):
                lines.append(f"| {row['variant']} | {row['batch_size']} | skipped: {row['skipped']} | | |")
            else:
                lines.append(f"| {row['variant']} | {row['batch_size']} | {row.get('words_per_s')} | {row.get('seconds')} | "
                             f"{row.get('peak_gpu_memory_mib')} |")
    long = steps.get("long_training")
    lines += ["", "## Longer training and F1", ""]
    if not_run(long):
        lines.append(not_run(long))
    else:
        lines.append(f"{long.get('status')}: {long.get('steps')} steps, {long.get('words')} words "
                     f"({long.get('epochs')} epochs) in {long.get('seconds')} s, {long.get('words_per_s')} words/s, "
                     f"{long.get('precision')}, batches {long.get('batch')}" + (f"; {long['error']}" if long.get("error") else ""))
        for split in ("dev", "test"):
            if split in long:
                s = long[split]
                lines.append(f"- {split}: ents_f {s['ents_f']}, p {s['ents_p']}, r {s['ents_r']} ({s['docs']} docs)")
        lines.append("A few minutes of training: not the converged figure of docs/benchmarks.md's CPU runs.")
    failed = [f"- {n}: {s.get('error')}" for n, s in steps.items() if s.get("status") == "failed" and n != "pytest"]
    if failed:
        lines += ["", "## Failures (tracebacks in log.txt)", ""] + failed
    return "\n".join(lines) + "\n"


def budget_text(budget_s: Optional[float]) -> str:
    return "none" if budget_s is None else f"{budget_s:g} s"


def _fmt(value: Any) -> str:
    return f"{value / 1e6:.2f} M" if isinstance(value, (int, float)) else str(value)


def _pct(value: Any) -> str:
    return f"{100 * value:.3f} %" if isinstance(value, (int, float)) else str(value)


# --- CLI --------------------------------------------------------------------------------


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", help="print the device call and check it against the limits given (run by `.ci/gpu-check prepare`)")
    p.add_argument("--budget-s", type=int, required=True, help="the run's budget (see run --budget-s)")
    p.add_argument("--max-timeout-s", type=float, default=None, help="seconds one device command may run")
    p.add_argument("--max-travel-mib", type=float, default=None, help="MiB the tree and the carried paths may hold together")
    p.add_argument("--max-command-chars", type=int, default=None, help="characters one device command may have")
    p.add_argument("--max-carry-paths", type=int, default=None, help="how many paths a call may carry")
    r = sub.add_parser("run", help="run the check, results under $OUT (run by `.ci/gpu-check device`)")
    r.add_argument("--out", default=None, help="results folder (default: $OUT, else ./gpu-check-out)")
    r.add_argument("--budget-s", type=float, default=None, help="hard limit of the whole run (default: none)")
    r.add_argument("--steps", type=lambda s: [x for x in s.split(",") if x], default=list(ALL_STEPS),
                   help=f"comma-separated subset of {','.join(ALL_STEPS)} (env always runs)")
    r.add_argument("--data", default=DATA_DIR, help="folder with train/dev/test.spacy")
    r.add_argument("--allow-cpu", action="store_true", help="run the GPU steps on CPU (a smoke test of this script)")
    r.add_argument("--pytest-timeout-s", type=float, default=150)
    r.add_argument("--train-steps", type=int, default=200)
    r.add_argument("--warmup-steps", type=int, default=20)
    r.add_argument("--train-batch-words", type=int, default=1000, help="fixed batch size (the config's final one)")
    r.add_argument("--train-slice-s", type=float, default=60)
    r.add_argument("--train-limit", type=int, default=0, help="read only the first N training docs (smoke tests)")
    r.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[64, 256, 1024, 4096])
    r.add_argument("--infer-slice-s", type=float, default=75)
    r.add_argument("--infer-repeat", type=int, default=2)
    r.add_argument("--infer-limit", type=int, default=0, help="only the first N test sentences (smoke tests)")
    r.add_argument("--long-min-s", type=float, default=60, help="skip the longer training if less would be left")
    r.add_argument("--long-max-steps", type=int, default=8000)
    r.add_argument("--eval-reserve-s", type=float, default=45)
    r.add_argument("--eval-limit", type=int, default=0, help="only the first N dev and test docs (smoke tests)")
    r.add_argument("--final-reserve-s", type=float, default=10)
    args = parser.parse_args(argv)
    if args.budget_s is not None and args.budget_s <= 0:
        parser.error("--budget-s must be above 0")
    if args.command == "run":
        unknown = [s for s in args.steps if s not in ALL_STEPS]
        if unknown:
            parser.error(f"unknown steps {unknown}; choose from {','.join(ALL_STEPS)}")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.command == "plan":
        limits = CallLimits(args.max_timeout_s, args.max_travel_mib, args.max_command_chars, args.max_carry_paths)
        return plan(REPO, args.budget_s, limits)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
