"""The GPU check (`.ci/gpu-check`, `tools/gpu_check.py`) on CPU: its FLOPs count
against a hand count and the torch modules, the device call checked against the limits
it is given, and a `device` run here, without CUDA, that records the environment and
that the GPU steps were skipped."""
import json
import os
import subprocess
import sys

import pytest
import torch
from spacy.util import load_config

from spacy_encoder.pytorch import EmbedConfig, EncoderConfig, Tok2VecEncoder, VectorsTok2VecEncoder

from .conftest import REPO, load_tool

MIB = 1024 * 1024
BUDGET_S = 420
# Limits as a lending tool might state them (the script knows none of its own).
LIMITS = dict(timeout_s=600, travel_mib=64, command_chars=2000, carry_paths=8)


gpu_check = load_tool("gpu_check")


def test_flops_per_token_match_a_hand_count():
    # D = 8, one layer, ff = 16, 4 attributes, a 3-token convolution, 10 keys:
    # mix 4*64 = 256, input conv 3*64 = 192, layer conv 192 + qkv 192 + output 64
    # + feed-forward 2*8*16 = 256: 1152 weights; 2 * 1152 + attention 4*1*8*10 = 2624.
    flops = gpu_check.encoder_flops_per_token(
        width=8, depth=1, n_heads=2, ff_width=16, n_attrs=4, local_window=3, ctx=10
    )
    assert flops["matmul_params"] == 1152
    assert flops["dense"] == 2304
    assert flops["attention"] == 320
    assert flops["forward"] == 2624
    assert flops["train"] == 3 * 2624
    # No convolutions, and static vectors of width 5: one more mixed input (+64), its
    # projection 5*8 = 40; the heads never change the count.
    no_conv = gpu_check.encoder_flops_per_token(
        width=8, depth=1, n_heads=4, ff_width=16, n_attrs=4, local_window=0, ctx=10, vectors_width=5
    )
    assert no_conv["matmul_params"] == (256 + 64 + 40) + (192 + 64 + 256) == 872
    with pytest.raises(ValueError, match="divisible"):
        gpu_check.encoder_flops_per_token(width=8, depth=1, n_heads=3, ff_width=16, n_attrs=4, local_window=3, ctx=1)


def test_flops_of_the_ner_config_match_a_hand_count():
    model = load_config(REPO / "configs" / "ner.cfg")["components"]["tok2vec"]["model"]
    flops = gpu_check.flops_from_config(dict(model))
    # D = 128, L = 2, ff = 512, k = 3, 4 attributes, ctx = max_length = 256.
    D, L, ff, k = 128, 2, 512, 3
    params = 4 * D * D + k * D * D + L * (k * D * D + 4 * D * D + 2 * D * ff)
    assert params == 606_208
    assert flops["matmul_params"] == params
    assert flops["forward"] == 2 * params + 4 * L * D * 256 == 1_474_560
    assert flops["train"] == 4_423_680
    # The figure the report's formula section states.
    assert "F = 1.47 MFLOP per token, training 4.42 MFLOP" in gpu_check.FLOPS_FORMULA
    assert gpu_check.flops_from_config(dict(model), ctx=10)["attention"] == 4 * L * D * 10


def matmul_weights(module: torch.nn.Module) -> int:
    return sum(
        m.weight.numel() for m in module.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d))
    )


@pytest.mark.parametrize(
    "settings",
    [
        dict(width=128, depth=4, n_heads=4, ff_width=512, local_window=3),
        dict(width=64, depth=2, n_heads=4, ff_width=128, local_window=0),
        dict(width=64, depth=3, n_heads=2, ff_width=96, local_window=5, vectors_width=50),
    ],
)
def test_matmul_params_are_the_modules_linear_and_conv_weights(settings):
    settings = dict(settings)
    vectors_width = settings.pop("vectors_width", 0)
    attrs = ["NORM", "PREFIX", "SUFFIX", "SHAPE"]
    embed = EmbedConfig(attrs=attrs, rows=[50, 20, 20, 20], width=settings["width"], vectors_width=vectors_width)
    encoder = EncoderConfig(**settings)
    module = (VectorsTok2VecEncoder if vectors_width else Tok2VecEncoder)(embed, encoder)
    counted = gpu_check.matmul_params_per_token(
        width=settings["width"], depth=settings["depth"], ff_width=settings["ff_width"], n_attrs=len(attrs),
        local_window=settings["local_window"], vectors_width=vectors_width,
    )
    assert counted == matmul_weights(module)


def test_attention_context_is_the_token_weighted_window_length():
    assert gpu_check.attention_context([10], 256, 192) == (10.0, 1.0)
    ctx, executed = gpu_check.attention_context([10, 20], 256, 192)
    assert ctx == pytest.approx((10 * 10 + 20 * 20) / 30)
    assert executed == 1.0
    # A doc longer than a window: every token attends to a full window; the overlap
    # of the two windows is run twice.
    ctx, executed = gpu_check.attention_context([300], 256, 192)
    assert ctx == 256.0
    assert 1.0 < executed < 2.0
    assert gpu_check.attention_context([], 256, 192) == (0.0, 0.0)


def test_mfu_is_achieved_over_peak():
    assert gpu_check.mfu(1000.0, 1e9, 1.0) == pytest.approx(1.0)
    assert gpu_check.mfu(1000.0, 1e9, 4.0) == pytest.approx(0.25)
    assert gpu_check.mfu(1000.0, 1e9, None) is None


def test_the_device_call_is_checked_against_the_limits_given():
    call = gpu_check.device_call(BUDGET_S)
    assert call["command"] == f"PYTHONUNBUFFERED=1 bash .ci/gpu-check device --budget-s {BUDGET_S}"
    assert call["carry"] == [".whl", ".gpu-check"]
    # The timeout leaves the install and the watchdog their time beyond the budget.
    assert call["timeout_s"] == BUDGET_S + gpu_check.INSTALL_GRACE_S + gpu_check.WATCHDOG_GRACE_S
    limits = gpu_check.CallLimits(**LIMITS)
    assert gpu_check.call_problems(call, carry_bytes=40 * MIB, tree_bytes=15 * MIB, limits=limits) == []
    problems = gpu_check.call_problems(call, carry_bytes=50 * MIB, tree_bytes=15 * MIB, limits=limits)
    assert problems == ["the tree (15.0 MiB) and the carried paths (50.0 MiB) exceed 64 MiB together"]
    long_call = dict(call, command="x" * 2001, carry=["a"] * 9)
    problems = gpu_check.call_problems(long_call, 0, 0, limits)
    assert problems == ["the command is 2001 characters (limit 2000)", "9 carried paths (limit 8)"]
    late = gpu_check.device_call(550)
    most = 600 - gpu_check.INSTALL_GRACE_S - gpu_check.WATCHDOG_GRACE_S
    assert gpu_check.call_problems(late, 0, 0, limits) == [f"timeout_s {late['timeout_s']} is above the limit 600 (--budget-s {most} at most)"]
    # No limits given: nothing is checked.
    assert gpu_check.call_problems(long_call, 100 * MIB, 100 * MIB, gpu_check.CallLimits()) == []


def fake_prepared_checkout(root, wheel_bytes=1000):
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".whl").mkdir()
    for name in ("spacy-3.8.18-cp312-cp312-manylinux_2_28_x86_64.whl", "spacy_encoder-0.1.0-py3-none-any.whl"):
        with (root / ".whl" / name).open("wb") as f:
            f.truncate(wheel_bytes)  # sparse: the size counts, no disk is used
    (root / ".gpu-check").mkdir()
    for split in ("train", "dev", "test"):
        (root / ".gpu-check" / f"{split}.spacy").write_bytes(b"x" * 10)
    (root / ".git" / "info" / "exclude").write_text("/.whl/\n/.gpu-check/\n")
    (root / "README.md").write_text("tracked\n")


def test_plan_prints_the_call_and_records_what_was_prepared(tmp_path, capsys):
    fake_prepared_checkout(tmp_path)
    assert gpu_check.plan(tmp_path, BUDGET_S, gpu_check.CallLimits(**LIMITS)) == 0
    out = capsys.readouterr().out
    call = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    assert call == gpu_check.device_call(BUDGET_S)
    prepared = json.loads((tmp_path / ".gpu-check" / "prepared.json").read_text())
    assert prepared["limits"] == LIMITS
    assert prepared["carry_bytes"] == 2 * 1000 + 3 * 10
    assert prepared["tree_bytes"] == len("tracked\n")
    assert {w["name"] for w in prepared["wheels"]} >= {"spacy_encoder-0.1.0-py3-none-any.whl"}


def test_plan_refuses_a_carry_over_the_limit(tmp_path, capsys):
    fake_prepared_checkout(tmp_path, wheel_bytes=33 * MIB)
    assert gpu_check.plan(tmp_path, BUDGET_S, gpu_check.CallLimits(**LIMITS)) == 1
    assert "the carried paths (66.0 MiB) exceed 64 MiB together" in capsys.readouterr().err
    assert gpu_check.plan(tmp_path, BUDGET_S) == 0  # no limits given


def test_plan_takes_the_limits_on_its_command_line():
    args = gpu_check.parse_args(["plan", "--budget-s", "300", "--max-timeout-s", "600", "--max-travel-mib", "64"])
    assert (args.budget_s, args.max_timeout_s, args.max_travel_mib, args.max_command_chars) == (300, 600, 64, None)
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["plan"])  # the budget is the caller's to choose
    assert gpu_check.parse_args(["run"]).budget_s is None


def test_the_markdown_report_renders_every_step():
    steps = {
        "environment": {"status": "ok", "torch": "2.11.0", "gpu_name": "NVIDIA H200", "cuda_available": True},
        "pytest": {"status": "ok", "passed": 6, "failed": 0, "errors": 0, "skipped": 0, "tests": {"t": "passed"}},
        "train_fp32": {
            "status": "ok", "precision": "fp32", "timed_steps": 180, "words_per_s": 12345.6, "peak_gpu_memory_mib": 800.0,
            "ner_loss_per_word_first": 0.5, "ner_loss_per_word_last": 0.1, "losses_finite": True,
            "attention_ctx_mean": 200.0, "train_flops_per_token": 8e6, "achieved_tflops": 0.1,
            "mfu_vs_datasheet": 0.0015, "mfu_vs_measured_matmul": 0.002, "batch": "1000 words",
        },
        "train_mixed": {"status": "skipped", "reason": "budget"},
        "inference": {
            "status": "ok", "note": "n", "scripted_vs_eager_max_abs_diff": 1e-6, "scripted_vs_eager_same_entities": True,
            "rows": [{"variant": "eager fp32", "batch_size": 64, "words_per_s": 1.0, "seconds": 1.0,
                      "peak_gpu_memory_mib": 1.0}, {"variant": "eager fp32", "batch_size": 256, "skipped": "slice"}],
        },
        "long_training": {
            "status": "ok", "steps": 10, "words": 100, "epochs": 0.1, "seconds": 5.0, "words_per_s": 20.0,
            "precision": "fp32", "batch": "b", "dev": {"docs": 1, "ents_f": 0.5, "ents_p": 0.5, "ents_r": 0.5},
        },
    }
    md = gpu_check.render_markdown({"started": "now", "budget_s": 420, "summary": "s", "steps": steps, "notes": []})
    assert "| fp32 | ok | 180 | 12345.6 | 800.0 | 0.5 -> 0.1 | True | 200.0 | 8.00 M | 0.1 | 0.150 % | 0.200 % |" in md
    assert "skipped: budget" in md
    assert "| eager fp32 | 256 | skipped: slice | | |" in md
    assert "- dev: ents_f 0.5" in md
    assert "forward per token   F = 2 * P + 4 * L * D * ctx" in md


def test_gpu_check_is_executable():
    assert os.access(REPO / ".ci" / "gpu-check", os.X_OK)


@pytest.mark.timeout(180)
def test_device_run_without_cuda_records_that_gpu_steps_were_skipped(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here: the run would do the GPU steps")
    env = {**os.environ, "OUT": str(tmp_path), "GPU_CHECK_PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(REPO / ".ci" / "gpu-check"), "device"], cwd=REPO, env=env, capture_output=True, text=True, timeout=170
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu-check.json", "gpu-check.md", "log.txt"]
    result = json.loads((tmp_path / "gpu-check.json").read_text())
    assert result["gpu"] is False
    assert result["steps"]["environment"]["status"] == "ok"
    assert result["steps"]["environment"]["cuda_available"] is False
    assert "no CUDA device: GPU steps skipped" in result["notes"]
    assert result["summary"].startswith("no CUDA device: GPU steps skipped")
    for step in ("pytest", "train_fp32", "train_mixed", "inference", "long_training"):
        assert result["steps"][step]["status"] == "skipped"
    assert "no CUDA device: GPU steps skipped" in (tmp_path / "gpu-check.md").read_text()


@pytest.mark.timeout(120)
def test_a_step_that_no_longer_fits_the_budget_is_skipped_saying_so(tmp_path):
    cmd = [sys.executable, str(REPO / "tools" / "gpu_check.py"), "run", "--out", str(tmp_path), "--allow-cpu",
           "--budget-s", "5", "--steps", "env,pytest"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    steps = json.loads((tmp_path / "gpu-check.json").read_text())["steps"]
    assert steps["pytest"]["status"] == "skipped"
    assert steps["pytest"]["reason"].startswith("budget: ")
    assert steps["train_fp32"] == {"status": "skipped", "reason": "not asked for (--steps)"}


@pytest.mark.timeout(60)
def test_the_watchdog_stops_a_run_past_its_budget(tmp_path):
    code = (
        "import sys, time; sys.path.insert(0, sys.argv[1]); import gpu_check as g\n"
        "r = g.Report(g.Path(sys.argv[2]), 0.5); r.data['args'] = {}; r.current = 'slow'; r.step('slow')\n"
        "g.start_watchdog(r, 0.5); time.sleep(30)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(REPO / "tools"), str(tmp_path)], capture_output=True, text=True, timeout=50
    )
    assert done.returncode == 3, done.stderr
    result = json.loads((tmp_path / "gpu-check.json").read_text())
    assert result["summary"].startswith("STOPPED: the run passed its budget")
    assert result["steps"]["slow"]["status"] == "failed"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_every_step_runs_on_cpu_at_a_tiny_size(tmp_path):
    """`--allow-cpu`: the steps that a GPU run does, on CPU and a few docs, so that the
    run on a lent device does not fail on a slip in this script."""
    if not (REPO / ".gpu-check" / "train.spacy").is_file():
        pytest.skip("no .gpu-check/ (bash .ci/gpu-check prepare makes it)")
    cmd = [
        sys.executable, str(REPO / "tools" / "gpu_check.py"), "run", "--out", str(tmp_path), "--allow-cpu",
        "--budget-s", "300", "--train-limit", "20", "--train-steps", "6", "--warmup-steps", "2",
        "--train-batch-words", "300", "--infer-limit", "30", "--infer-repeat", "1", "--batch-sizes", "8,32",
        "--long-min-s", "5", "--long-max-steps", "4", "--eval-limit", "3", "--eval-reserve-s", "20",
    ]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=590)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    steps = json.loads((tmp_path / "gpu-check.json").read_text())["steps"]
    assert {name: s["status"] for name, s in steps.items()} == {
        "environment": "ok", "pytest": "ok", "train_fp32": "ok", "train_mixed": "ok", "inference": "ok",
        "long_training": "ok",
    }
    assert steps["train_fp32"]["words_per_s"] > 0 and steps["train_fp32"]["losses_finite"]
    assert steps["inference"]["scripted_vs_eager_max_abs_diff"] <= 1e-4
    assert len(steps["inference"]["rows"]) == 6
    assert "ents_f" in steps["long_training"]["test"]
