"""The machine a benchmark ran on: CPU, ISA flags, cores, library versions, and a short
calibration of its matrix products.

The same pipelines ran 1.6-1.8× slower on one 2-core host than on another of the same
kind while spaCy's CNN ran at the same speed on both, so speed figures are
only comparable with the host named. `host_record()` is what `spacy-encoder bench speed`
writes under "host" in results.json and prints above its table, and what `spacy-encoder
bench host` prints alone.

Reading never fails: the CPU comes from /proc/cpuinfo on Linux, from `platform`
elsewhere (flags then unknown); a library that is not installed has no version; a
calibration that cannot run says why. torch, onnx and onnxruntime are imported inside
the calibration only.
"""
import importlib.metadata
import os
import platform
import subprocess
import time
from pathlib import Path
from statistics import median
from typing import Any, Callable, Dict, List, Optional

CPUINFO = Path("/proc/cpuinfo")
# ISA extensions that decide the speed of our kernels: AVX2/AVX-512 for float GEMM;
# VNNI (int8 dot products: torch's fbgemm and onnxruntime's int8 kernels), BF16/FP16
# and AMX (Intel's matrix tiles: oneDNN's int8 and bf16).
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16")
# Distributions whose versions are recorded, in this order (first installed name wins).
DISTRIBUTIONS = {
    "torch": ("torch",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "onnx": ("onnx",),
    "numpy": ("numpy",),
    "blis": ("blis",),
    "thinc": ("thinc",),
    "spacy": ("spacy",),
    "spacy-encoder": ("spacy-encoder",),
}
# Environment variables that change thread behaviour, recorded when set.
THREAD_ENV = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "SPACY_ENCODER_SMALL_INPUT_TOKENS")
# Calibration: one fp32 matrix product of (GEMM_SIZE, GEMM_SIZE) @ (GEMM_SIZE, GEMM_SIZE),
# 0.27 GFLOP, a few ms on one core; the median of REPEATS after one warm-up call.
GEMM_SIZE = 512
REPEATS = 7


def host_record(calibrate: bool = True, size: int = GEMM_SIZE, repeats: int = REPEATS) -> Dict[str, Any]:
    """Everything below in one JSON-ready dict: "cpu", "cores", "versions", "python",
    "platform", "thread_env", "load_average" and (unless `calibrate` is False, then
    None) "calibration"."""
    return {
        "cpu": cpu_info(),
        "cores": cores(),
        "versions": versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "thread_env": {name: os.environ[name] for name in THREAD_ENV if name in os.environ},
        "load_average": _load_average(),
        "calibration": calibration(size, repeats) if calibrate else None,
    }


# --- CPU and cores -------------------------------------------------------------------


def _cpuinfo_blocks() -> List[Dict[str, str]]:
    """One dict per processor of /proc/cpuinfo ([] where it cannot be read)."""
    try:
        text = CPUINFO.read_text(encoding="utf8", errors="replace")
    except OSError:
        return []
    blocks: List[Dict[str, str]] = []
    current: Dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current = {}
            continue
        key, _, value = line.partition(":")
        current[key.strip()] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def cpu_info() -> Dict[str, Any]:
    """The CPU: "model_name", "vendor", "family", "model", "stepping", "flags" (the ones
    of `FLAGS` present; None when unknown), "absent_flags", "source"."""
    blocks = _cpuinfo_blocks()
    if blocks:
        first = blocks[0]
        # x86 names its flags "flags", ARM "Features".
        flags = set((first.get("flags") or first.get("Features") or "").split())
        return {
            "model_name": first.get("model name") or first.get("Model name") or first.get("Hardware") or platform.processor() or None,
            "vendor": first.get("vendor_id") or first.get("CPU implementer"),
            "family": first.get("cpu family") or first.get("CPU architecture"),
            "model": first.get("model") or first.get("CPU part"),
            "stepping": first.get("stepping") or first.get("CPU revision"),
            "flags": [flag for flag in FLAGS if flag in flags],
            "absent_flags": [flag for flag in FLAGS if flag not in flags],
            "source": str(CPUINFO),
        }
    return {
        "model_name": _platform_cpu_name(),
        "vendor": None,
        "family": None,
        "model": None,
        "stepping": None,
        "flags": None,
        "absent_flags": None,
        "source": "platform",
    }


def _platform_cpu_name() -> Optional[str]:
    """The CPU's name where there is no /proc/cpuinfo (macOS: sysctl; else `platform`)."""
    if platform.system() == "Darwin":
        try:
            done = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5)
            if done.returncode == 0 and done.stdout.strip():
                return done.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or None


def cores() -> Dict[str, Optional[int]]:
    """"logical" (os.cpu_count), "usable" (the CPUs this process may run on:
    sched_getaffinity, where the OS has it) and "physical" (distinct physical id / core
    id pairs of /proc/cpuinfo; None where it does not say)."""
    try:
        usable: Optional[int] = len(os.sched_getaffinity(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        usable = None
    pairs = {(b.get("physical id"), b.get("core id")) for b in _cpuinfo_blocks() if "core id" in b}
    return {"logical": os.cpu_count(), "usable": usable, "physical": len(pairs) or None}


def versions() -> Dict[str, Optional[str]]:
    """Installed versions of the libraries that run the benchmarks (None: not installed)."""
    found: Dict[str, Optional[str]] = {}
    for key, names in DISTRIBUTIONS.items():
        found[key] = None
        for name in names:
            try:
                found[key] = importlib.metadata.version(name)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return found


def _load_average() -> Optional[float]:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


# --- Calibration ---------------------------------------------------------------------


def _median_seconds(run: Callable[[], Any], repeats: int) -> float:
    run()  # warm-up: allocation, kernel selection, thread start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return max(median(times), 1e-9)


def calibration(size: int = GEMM_SIZE, repeats: int = REPEATS) -> Dict[str, Any]:
    """GEMM rates of this host, each a dict of "unit", "1 thread" and "default threads"
    (with "threads", how many that is, where known), or "skipped" with the reason:

    - "torch_fp32": torch.mm in float32, one intra-op thread and torch's default;
    - "numpy_fp32": numpy's matmul (its BLAS at its own default threads);
    - "blis_fp32": thinc's NumpyOps.gemm (blis, one thread): what spaCy's CNN runs;
    - "onnxruntime_int8": onnxruntime's MatMulInteger of uint8 by int8 (what
      `deploy onnx --optimize int8` runs for each quantized matrix product), in GOP/s,
      a session with one intra-op thread and one with onnxruntime's default.
    """
    ops = 2.0 * size**3 / 1e9
    result: Dict[str, Any] = {"shape": [size, size, size], "repeats": repeats}
    for key, measure in (
        ("torch_fp32", _torch_fp32),
        ("numpy_fp32", _numpy_fp32),
        ("blis_fp32", _blis_fp32),
        ("onnxruntime_int8", _onnxruntime_int8),
    ):
        try:
            seconds = measure(size, repeats)
        except ImportError as err:
            result[key] = {"skipped": f"not installed ({err.name or err})"}
            continue
        except Exception as err:  # a calibration never stops a benchmark
            result[key] = {"skipped": f"{type(err).__name__}: {err}"}
            continue
        threads = seconds.pop("threads", None)
        row: Dict[str, Any] = {"unit": "GOP/s" if key.endswith("int8") else "GFLOP/s"}
        row.update({label: float(f"{ops / s:.4g}") for label, s in seconds.items()})
        if threads is not None:
            row["threads"] = threads
        result[key] = row
    return result


def _torch_fp32(size: int, repeats: int) -> Dict[str, Any]:
    import torch

    from .threads import one_intra_op_thread

    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)
    seconds: Dict[str, Any] = {"threads": torch.get_num_threads()}
    with torch.inference_mode():
        with one_intra_op_thread():
            seconds["1 thread"] = _median_seconds(lambda: torch.mm(a, b), repeats)
        if seconds["threads"] > 1:
            seconds["default threads"] = _median_seconds(lambda: torch.mm(a, b), repeats)
    return seconds


def _numpy_fp32(size: int, repeats: int) -> Dict[str, Any]:
    import numpy

    rng = numpy.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype="float32")
    b = rng.standard_normal((size, size), dtype="float32")
    return {"default threads": _median_seconds(lambda: a @ b, repeats)}


def _blis_fp32(size: int, repeats: int) -> Dict[str, Any]:
    import numpy
    from thinc.api import NumpyOps

    ops = NumpyOps()
    rng = numpy.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype="float32")
    b = rng.standard_normal((size, size), dtype="float32")
    return {"1 thread": _median_seconds(lambda: ops.gemm(a, b), repeats)}


def _onnxruntime_int8(size: int, repeats: int) -> Dict[str, Any]:
    import numpy
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    rng = numpy.random.default_rng(0)
    weight = rng.integers(-127, 128, size=(size, size), dtype="int8")
    a = rng.integers(0, 256, size=(size, size), dtype="uint8")
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])],
        "calibration",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [size, size])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [size, size])],
        initializer=[numpy_helper.from_array(weight, "B")],
    )
    # Opset 13 and IR 8: old enough for every onnxruntime this package supports.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    graph_bytes = model.SerializeToString()
    seconds: Dict[str, Any] = {}
    for label, threads in (("1 thread", 1), ("default threads", 0)):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(graph_bytes, options, providers=["CPUExecutionProvider"])
        seconds[label] = _median_seconds(lambda s=session: s.run(None, {"A": a}), repeats)
    # The sessions' threads spin after each run: they end with the sessions, here.
    return seconds


# --- Printing ------------------------------------------------------------------------


def host_lines(record: Dict[str, Any]) -> List[str]:
    """The record as Markdown lines: the CPU, cores and versions, then the calibration
    as a table (bench speed prints these above its own tables)."""
    cpu = record.get("cpu") or {}
    ids = ", ".join(
        f"{name} {cpu[key]}" for key, name in (("family", "family"), ("model", "model"), ("stepping", "stepping")) if cpu.get(key)
    )
    vendor = "; ".join(part for part in (cpu.get("vendor"), ids) if part)
    if cpu.get("flags") is None:
        flags = "flags unknown (no /proc/cpuinfo)"
    else:
        flags = f"flags: {' '.join(cpu['flags']) or 'none of interest'}"
        if cpu.get("absent_flags"):
            flags += f" (absent: {' '.join(cpu['absent_flags'])})"
    cores_ = record.get("cores") or {}
    core_text = f"{cores_.get('logical')} logical CPUs, {cores_.get('usable')} usable"
    if cores_.get("physical"):
        core_text += f", {cores_['physical']} physical cores"
    versions_ = record.get("versions") or {}
    version_text = ", ".join(f"{name} {version}" for name, version in versions_.items() if version)
    missing = [name for name, version in versions_.items() if not version]
    lines = [
        f"Host: {cpu.get('model_name') or 'unknown CPU'}" + (f" ({vendor})" if vendor else "") + f"; {flags}; {core_text}.",
        f"Versions: {version_text}, python {record.get('python')}" + (f" (not installed: {', '.join(missing)})" if missing else "") + ".",
    ]
    if record.get("thread_env"):
        lines.append("Thread settings: " + ", ".join(f"{k}={v}" for k, v in record["thread_env"].items()) + ".")
    calib = record.get("calibration")
    if not calib:
        return lines + [""]
    m, k, n = calib["shape"]
    load = record.get("load_average")
    lines += [
        "",
        f"| calibration: ({m}, {k}) @ ({k}, {n}), median of {calib['repeats']}"
        + (f", load average {load:.2f}" if load is not None else "")
        + " | unit | 1 thread | default threads |",
        "|---|---|---|---|",
    ]
    names = {
        "torch_fp32": "torch fp32 GEMM",
        "numpy_fp32": "numpy fp32 GEMM (its BLAS)",
        "blis_fp32": "blis fp32 GEMM (thinc: spaCy's CNN)",
        "onnxruntime_int8": "onnxruntime int8 MatMulInteger",
    }
    for key, name in names.items():
        row = calib.get(key)
        if row is None:
            continue
        if "skipped" in row:
            lines.append(f"| {name} | - | skipped: {row['skipped']} | |")
            continue
        default = row.get("default threads")
        default_text = "-" if default is None else f"{default:,.1f}" + (f" ({row['threads']})" if row.get("threads") else "")
        one = row.get("1 thread")
        lines.append(f"| {name} | {row['unit']} | {'-' if one is None else f'{one:,.1f}'} | {default_text} |")
    return lines + [""]
