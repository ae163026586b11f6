"""The host record of `spacy-encoder bench speed` / `bench host`: what it names, that it
never fails, and that its calibration measures something (the rates themselves are
printed, never asserted)."""
import json

import pytest
from typer.testing import CliRunner

from spacy_encoder import host
from spacy_encoder.cli import app
from spacy_encoder.cli.bench import _markdown

# Two processors of a host like the slower host measured (Intel family 6 model 207).
CPUINFO_B = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 207
model name\t: INTEL(R) XEON(R) PLATINUM 8581C CPU @ 2.10GHz
stepping\t: 2
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni avx512_bf16 avx512_fp16 hypervisor

processor\t: 1
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 207
model name\t: INTEL(R) XEON(R) PLATINUM 8581C CPU @ 2.10GHz
stepping\t: 2
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni avx512_bf16 avx512_fp16 hypervisor
"""


@pytest.fixture
def host_b(tmp_path, monkeypatch):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO_B, encoding="utf8")
    monkeypatch.setattr(host, "CPUINFO", path)


def test_the_record_has_every_key():
    record = host.host_record(calibrate=False)
    assert set(record) == {"cpu", "cores", "versions", "python", "platform", "thread_env", "load_average", "calibration"}
    assert set(record["cpu"]) == {"model_name", "vendor", "family", "model", "stepping", "flags", "absent_flags", "source"}
    assert set(record["cores"]) == {"logical", "usable", "physical"}
    assert set(record["versions"]) == {"torch", "onnxruntime", "onnx", "numpy", "blis", "thinc", "spacy", "spacy-encoder"}
    assert record["versions"]["numpy"] and record["versions"]["spacy"] and record["versions"]["torch"]
    assert record["cores"]["logical"] >= 1 and record["calibration"] is None
    json.dumps(record)  # results.json holds it


def test_the_cpu_is_read_from_cpuinfo(host_b):
    cpu = host.cpu_info()
    assert cpu["model_name"].startswith("INTEL(R) XEON(R)") and cpu["vendor"] == "GenuineIntel"
    assert (cpu["family"], cpu["model"], cpu["stepping"]) == ("6", "207", "2")
    assert cpu["flags"] == ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16"]
    assert cpu["absent_flags"] == ["amx_tile", "amx_int8", "amx_bf16"]
    assert host.cores()["physical"] == 1  # two logical processors on one core
    text = "\n".join(host.host_lines(host.host_record(calibrate=False)))
    assert "GenuineIntel; family 6, model 207, stepping 2" in text
    assert "flags: avx2 avx512f avx512_vnni avx512_bf16 avx512_fp16 (absent: amx_tile amx_int8 amx_bf16)" in text


def test_without_cpuinfo_the_record_falls_back_to_platform(tmp_path, monkeypatch):
    monkeypatch.setattr(host, "CPUINFO", tmp_path / "no-such-file")
    record = host.host_record(calibrate=False)
    assert record["cpu"]["source"] == "platform"
    assert record["cpu"]["flags"] is None and record["cores"]["physical"] is None
    assert record["cores"]["logical"] >= 1
    assert "flags unknown" in "\n".join(host.host_lines(record))


def test_the_calibration_returns_positive_rates():
    calib = host.calibration(size=64, repeats=2)
    assert calib["shape"] == [64, 64, 64]
    for key in ("torch_fp32", "numpy_fp32", "blis_fp32"):
        rates = [v for k, v in calib[key].items() if k in ("1 thread", "default threads")]
        assert rates and all(rate > 0 for rate in rates), (key, calib[key])
    assert calib["torch_fp32"]["1 thread"] > 0
    ort = calib["onnxruntime_int8"]
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        assert "skipped" in ort
    else:
        assert ort["unit"] == "GOP/s" and ort["1 thread"] > 0 and ort["default threads"] > 0, ort


def test_a_calibration_that_fails_says_why(monkeypatch):
    def broken(size, repeats):
        raise RuntimeError("no kernel")

    def missing(size, repeats):
        raise ImportError("No module named 'onnxruntime'", name="onnxruntime")

    monkeypatch.setattr(host, "_blis_fp32", broken)
    monkeypatch.setattr(host, "_onnxruntime_int8", missing)
    calib = host.calibration(size=32, repeats=1)
    assert calib["blis_fp32"] == {"skipped": "RuntimeError: no kernel"}
    assert calib["onnxruntime_int8"] == {"skipped": "not installed (onnxruntime)"}
    lines = "\n".join(host.host_lines({"calibration": calib, "cpu": {}, "cores": {}, "versions": {}}))
    assert "skipped: not installed (onnxruntime)" in lines and "| torch fp32 GEMM | GFLOP/s |" in lines


def test_the_bench_table_starts_with_the_host(host_b):
    record = host.host_record(calibrate=False)
    record["calibration"] = {"shape": [512, 512, 512], "repeats": 7, "torch_fp32": {"unit": "GFLOP/s", "1 thread": 80.0, "default threads": 150.0, "threads": 2}}
    results = {
        "host": record,
        "machine": {"cpus": 2, "torch_threads": 2, "OMP_WAIT_POLICY": "PASSIVE"},
        "rounds": 1,
        "doc_length": {k: {"seconds": 0.1, "peak_rss_mb": 1.0} for k in ("1000", "10000", "100000")} | {"ratio_100k_vs_100x1k": 1.0},
        "padding": {},
    }
    table = _markdown(results)
    assert table.startswith("Host: INTEL(R) XEON(R) PLATINUM 8581C")
    assert "| torch fp32 GEMM | GFLOP/s | 80.0 | 150.0 (2) |" in table
    assert table.index("Host:") < table.index("Machine:")


def test_bench_host_prints_the_record():
    result = CliRunner().invoke(app, ["bench", "host", "--json", "--no-calibration"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["cpu"]["source"]
    result = CliRunner().invoke(app, ["bench", "host", "--no-calibration"])
    assert result.exit_code == 0 and result.output.startswith("Host: ")
