"""Mutation check: do the tests catch broken maths?

Each fault below is one realistic one-line mistake: (file, the exact original snippet,
its replacement). For each, a copy of the working tree gets the fault, the relevant
test files run there (fail fast), and the fault is KILLED if a test fails or SURVIVES
if they all pass. A snippet that is not found exactly once is STALE: the code moved and
the fault list must follow it. The script exits non-zero on any survivor, stale fault
or broken baseline.

    python tools/mutation_check.py            # every fault
    python tools/mutation_check.py --only rotary-noop --only mask-off-by-one
    python tools/mutation_check.py --list

The golden-output tests (tests/test_golden.py) are left out on purpose: they would
kill every fault in a .v1 code path and say nothing about whether a reference test
checks the maths.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]
TESTS = [
    "tests/pytorch/test_references.py",
    "tests/test_windows.py",
    "tests/pytorch/test_encoder.py",
    "tests/test_layers.py",
]
P = "spacy_encoder/pytorch/"
# Faults in the static-vectors path run these (the default list does not train a
# vectors pipeline).
VECTOR_TESTS = ["tests/test_vectors.py", "tests/pytorch/test_references.py"]


@dataclass
class Fault:
    name: str
    path: str
    original: str
    replacement: str
    tests: Optional[List[str]] = None


FAULTS = [
    # --- attention.py: mask, scale, heads -------------------------------------------
    Fault("mask-off-by-one", P + "attention.py",
          "keep = positions.unsqueeze(0) < lengths.unsqueeze(1)", "keep = positions.unsqueeze(0) <= lengths.unsqueeze(1)"),
    Fault("mask-inverted", P + "attention.py",
          "attn_mask=keep)  # (B, H, T, Dh)", "attn_mask=~keep)  # (B, H, T, Dh)"),
    Fault("empty-row-guard-dropped", P + "attention.py",
          "return (keep | empty_row_guard).unsqueeze(1)", "return keep.unsqueeze(1)"),
    Fault("explicit-mask-inverted", P + "attention.py",
          "logits.masked_fill(~keep,", "logits.masked_fill(keep,"),
    Fault("explicit-scale-wrong", P + "attention.py",
          "/ math.sqrt(self.head_width)", "/ self.head_width"),
    Fault("fast-scale-wrong", P + "attention.py",
          "attn_mask=keep)  # (B, H, T, Dh)", "attn_mask=keep, scale=1.0)  # (B, H, T, Dh)"),
    Fault("key-is-query", P + "attention.py",
          "q, k = self.rotary.rotate(qkv[0], qkv[1])", "q, k = self.rotary.rotate(qkv[0], qkv[0])"),
    Fault("heads-merged-wrong", P + "attention.py",
          "y = y.transpose(1, 2).reshape(batch, seq_len,", "y = y.reshape(batch, seq_len,"),
    # --- positions.py ---------------------------------------------------------------
    Fault("rotary-noop", P + "positions.py",
          "return rotated[0], rotated[1]", "return q, k"),
    Fault("rotary-q-only", P + "positions.py",
          "return rotated[0], rotated[1]", "return rotated[0], k"),
    Fault("rotary-half-sign", P + "positions.py",
          "torch.cat([-sin[:, :half], sin[:, half:]], dim=-1)", "torch.cat([sin[:, :half], sin[:, half:]], dim=-1)"),
    Fault("rotary-roll-wrong", P + "positions.py",
          "qk.roll(half, -1)", "qk.roll(1, -1)"),
    Fault("rotary-frequencies", P + "positions.py",
          "dtype=torch.float32) / head_width))", "dtype=torch.float32) / (2 * head_width)))"),
    Fault("sinusoidal-sin-cos-swapped", P + "positions.py",
          "table[:, 0::2] = torch.sin(position * div)", "table[:, 0::2] = torch.cos(position * div)"),
    Fault("sinusoidal-frequencies", P + "positions.py",
          "(-math.log(10000.0) / width)", "(-math.log(1000.0) / width)"),
    Fault("sinusoidal-not-added", P + "positions.py",
          "return x + self.table[: x.size(1)].to(x.dtype)", "return x"),
    Fault("learned-not-added", P + "positions.py",
          "return x + self.table.weight[: x.size(1)].to(x.dtype)", "return x"),
    # --- block.py: residuals, norms, convolution --------------------------------------
    Fault("norm-first-inverted", P + "block.py",
          "        if self.norm_first:\n            x = x + self.dropout(",
          "        if not self.norm_first:\n            x = x + self.dropout("),
    Fault("prenorm-attention-residual-dropped", P + "block.py",
          "x = x + self.dropout(self.attention(self.attention_norm(x), keep))",
          "x = self.dropout(self.attention(self.attention_norm(x), keep))"),
    Fault("prenorm-ff-norm-dropped", P + "block.py",
          "x = x + self.dropout(self.feed_forward(self.ff_norm(x)))", "x = x + self.dropout(self.feed_forward(x))"),
    Fault("postnorm-attention-norm-dropped", P + "block.py",
          "x = self.attention_norm(x + self.dropout(self.attention(x, keep)))",
          "x = x + self.dropout(self.attention(x, keep))"),
    Fault("postnorm-ff-residual-dropped", P + "block.py",
          "x = self.ff_norm(x + self.dropout(self.feed_forward(x)))", "x = self.ff_norm(self.dropout(self.feed_forward(x)))"),
    Fault("ff-relu-for-gelu", P + "block.py",
          "self.output(self.dropout(F.gelu(self.hidden(x))))", "self.output(self.dropout(F.relu(self.hidden(x))))"),
    Fault("conv-reads-padding", P + "block.py",
          "h = (self.norm(x) * real).transpose(1, 2)", "h = self.norm(x).transpose(1, 2)"),
    Fault("conv-residual-dropped", P + "block.py",
          "return x + self.dropout(h)", "return self.dropout(h)"),
    Fault("conv-norm-dropped", P + "block.py",
          "h = (self.norm(x) * real).transpose(1, 2)", "h = (x * real).transpose(1, 2)"),
    Fault("layer-conv-skipped", P + "block.py",
          "        x = self.local(x, real)\n        if self.norm_first:\n            x = x + self.dropout(",
          "        if self.norm_first:\n            x = x + self.dropout("),
    # block.py: the int8 path's convolution as one Linear layer over its taps
    Fault("linear-conv-taps-reversed", P + "block.py",
          "module.proj.weight.copy_(weight.permute(2, 0, 1).reshape(window * width, width))",
          "module.proj.weight.copy_(weight.flip(2).permute(2, 0, 1).reshape(window * width, width))"),
    Fault("linear-conv-bias-every-tap", P + "block.py",
          "            module.proj.bias.zero_()\n", "            module.proj.bias.zero_()\n            module.proj.bias.copy_(local.conv.bias.detach().repeat(window))\n"),
    Fault("linear-conv-reads-padding", P + "block.py",
          "h = F.pad(self.norm(x) * real, (0, 0, half, half))", "h = F.pad(self.norm(x), (0, 0, half, half))"),
    Fault("linear-conv-last-tap-dropped", P + "block.py",
          "for j in range(1, self.taps):", "for j in range(1, self.taps - 1):"),
    # --- encoder.py ------------------------------------------------------------------
    Fault("final-norm-dropped", P + "encoder.py",
          "return self.final_norm(x) * real", "return x * real"),
    Fault("padding-not-zeroed", P + "encoder.py",
          "return self.final_norm(x) * real", "return self.final_norm(x)"),
    Fault("rotary-not-wired", P + "encoder.py",
          'rotary = RotaryPositions(head_width, config.max_length) if config.positions == "rotary" else NoPositions()',
          "rotary = NoPositions()"),
    Fault("input-conv-skipped", P + "encoder.py",
          "x = self.local(self.positions.add(x), real)", "x = self.positions.add(x)"),
    Fault("positions-not-added", P + "encoder.py",
          "x = self.local(self.positions.add(x), real)", "x = self.local(x, real)"),
    Fault("empty-row-counted-real", P + "encoder.py",
          "real = keep[:, 0, 0, :].unsqueeze(-1) & (lengths > 0).view(-1, 1, 1)", "real = keep[:, 0, 0, :].unsqueeze(-1)"),
    # --- embeddings.py ---------------------------------------------------------------
    Fault("hash-ignores-high-bits", P + "embeddings.py",
          "hashed = (low * a + high * b + c) % self.prime", "hashed = (low * a + c) % self.prime"),
    Fault("hash-ignores-low-bits", P + "embeddings.py",
          "hashed = (low * a + high * b + c) % self.prime", "hashed = (high * b + c) % self.prime"),
    Fault("hash-high-bits-truncated", P + "embeddings.py",
          "high = ((ids >> 32) & self.low_32)", "high = ((ids >> 48) & self.low_32)"),
    Fault("hash-offsets-dropped", P + "embeddings.py",
          "return hashed % self.rows + self.offsets", "return hashed % self.rows"),
    Fault("hashes-not-summed", P + "embeddings.py",
          "self.table(self.row_ids(ids)).sum(dim=2)", "self.table(self.row_ids(ids))[:, :, 0]"),
    Fault("feature-dropout-at-inference", P + "embeddings.py",
          "if self.training and self.use_feature_dropout:", "if self.use_feature_dropout:"),
    Fault("feature-dropout-rescaled", P + "embeddings.py",
          "vectors = vectors * kept.to(vectors.dtype)", "vectors = vectors * kept.to(vectors.dtype) / (1 - self.feature_dropout)"),
    Fault("feature-dropout-rate-inverted", P + "embeddings.py",
          ">= self.feature_dropout  # (B, T, F, 1)", "< self.feature_dropout  # (B, T, F, 1)"),
    Fault("embedding-norm-dropped", P + "embeddings.py",
          "return self.dropout(self.norm(self.mix(vectors)))", "return self.dropout(self.mix(vectors))"),
    # --- windows.py: the window rule and stitching ----------------------------------------
    Fault("own-end-moved-by-one", P + "windows.py",
          "own_end = (starts[i + 1] + starts[i] + max_length) // 2", "own_end = (starts[i + 1] + starts[i] + max_length + 1) // 2"),
    Fault("own-end-at-next-start", P + "windows.py",
          "own_end = (starts[i + 1] + starts[i] + max_length) // 2", "own_end = starts[i + 1]"),
    Fault("window-loop-bound", P + "windows.py",
          "while start + max_length < n_tokens:", "while start + max_length <= n_tokens:"),
    # (`n_tokens <= max_length` -> `<` would be an equivalent mutant: a doc of exactly
    # max_length tokens then takes the loop and gets the same one window.)
    Fault("last-window-not-end-aligned", P + "windows.py",
          "starts.append(n_tokens - max_length)", "starts.append(start)"),
    Fault("short-doc-split", P + "windows.py",
          "if n_tokens <= max_length:", "if n_tokens < max_length - 1:"),
    Fault("stitch-wrong-rows", P + "windows.py",
          "hidden[i, w[2] - w[0] : w[3] - w[0]]", "hidden[i, : w[3] - w[2]]"),
    # --- layers.py: plans, buckets, gradients -------------------------------------------
    Fault("gather-from-window-start", "spacy_encoder/layers.py",
          "numpy.arange(own_start - start, own_end - start)", "numpy.arange(0, own_end - own_start)"),
    Fault("plan-own-range-not-offset", "spacy_encoder/layers.py",
          "windows.append((offset + start, length, offset + own_start, offset + own_end))",
          "windows.append((offset + start, length, own_start, own_end))"),
    Fault("padding-counted-as-tokens", "spacy_encoder/layers.py",
          "lengths = plan.lengths[first:end]  # (B,)", "lengths = numpy.full((end - first,), seq_len)  # (B,)"),
    Fault("overlap-gradients-not-summed", "spacy_encoder/layers.py",
          "ops.scatter_add(dX, ops.asarray(plan.source[real]), dX_padded[ops.asarray(real)])",
          "dX[ops.asarray(plan.source[real])] = dX_padded[ops.asarray(real)]"),
    # --- static vectors (TransformerTok2Vec.v2): embeddings, lookup, windows, scale ---------
    Fault("vectors-not-mixed", P + "embeddings.py",
          "self.mix(torch.cat([hashed, projected], dim=-1))", "self.mix(torch.cat([hashed, 0.0 * projected], dim=-1))",
          VECTOR_TESTS),
    Fault("vectors-dropout-at-inference", P + "embeddings.py",
          "if self.training and self.use_vectors_dropout:", "if self.use_vectors_dropout:", VECTOR_TESTS),
    Fault("vectors-dropout-rate-inverted", P + "embeddings.py",
          "kept = torch.rand(batch, seq_len, 1, device=ids.device) >= self.vectors_dropout",
          "kept = torch.rand(batch, seq_len, 1, device=ids.device) < self.vectors_dropout", VECTOR_TESTS),
    Fault("missing-vectors-not-zeroed", "spacy_encoder/layers.py",
          "V[rows < 0] = 0.0", "pass", VECTOR_TESTS),
    Fault("vectors-keyed-by-lowercase", "spacy_encoder/layers.py",
          'key_attr = getattr(table, "attr", ORTH)', 'key_attr = intify_attr("LOWER")', VECTOR_TESTS),
    Fault("vectors-padded-from-first-bucket", "spacy_encoder/layers.py",
          "Sb = S_padded[row : row + n_rows * seq_len]", "Sb = S_padded[: n_rows * seq_len]", VECTOR_TESTS),
    Fault("doc-encoder-vectors-misaligned", P + "windows.py",
          "vector_rows = window_rows(vectors, windows)", "vector_rows = window_rows(vectors.flip(0), windows)",
          VECTOR_TESTS),
    Fault("output-scale-ignored", P + "encoder.py",
          "self.scaled = config.output_scale != 1.0", "self.scaled = False", VECTOR_TESTS),
]


def copy_tree(dst: Path) -> None:
    """The working tree as git sees it (tracked and untracked-not-ignored files)."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file() and (rel.startswith(("spacy_encoder/", "tests/", "corpus/wikigold/", "configs/")) or rel == "pyproject.toml"):
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)


def run_tests(root: Path, tests: List[str], timeout: float) -> Tuple[str, str]:
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", PYTHONDONTWRITEBYTECODE="1")
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--timeout", str(int(timeout)), *tests]
    try:
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout + 30)
    except subprocess.TimeoutExpired:
        return "KILLED", "timeout"
    output = done.stdout + done.stderr
    if done.returncode == 0:
        return "SURVIVED", ""
    failed = [line.split(" - ")[0].replace("FAILED ", "") for line in output.splitlines() if line.startswith(("FAILED", "ERROR"))]
    if done.returncode == 1:
        return "KILLED", failed[0] if failed else "failed"
    return "ERROR", f"pytest exit {done.returncode}: " + (failed[0] if failed else output.strip().splitlines()[-1][:200])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", help="run only this fault (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the faults and exit")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per fault")
    args = parser.parse_args()
    faults = [f for f in FAULTS if not args.only or f.name in args.only]
    if args.list:
        for f in faults:
            print(f"{f.name:36} {f.path}")
        return 0
    if args.only and len(faults) != len(set(args.only)):
        print(f"unknown fault in {args.only}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        root = Path(tmp)
        copy_tree(root)
        where = subprocess.run(
            [sys.executable, "-c", "import spacy_encoder; print(spacy_encoder.__file__)"],
            cwd=root, env=dict(os.environ, PYTHONPATH=str(root)), capture_output=True, text=True, check=True,
        ).stdout.strip()
        if not where.startswith(str(root)):
            print(f"the copy is not what gets imported ({where}); aborting", file=sys.stderr)
            return 2
        start = time.time()
        status, detail = run_tests(root, TESTS, args.timeout)
        print(f"baseline (no fault): {'pass' if status == 'SURVIVED' else 'FAIL ' + detail} ({time.time() - start:.0f} s)")
        if status != "SURVIVED":
            return 2
        counts = {"KILLED": 0, "SURVIVED": 0, "STALE": 0, "ERROR": 0}
        for fault in faults:
            path = root / fault.path
            text = path.read_text() if path.exists() else ""
            found = text.count(fault.original)
            t0 = time.time()
            if found != 1:
                status, detail = "STALE", f"snippet found {found} times in {fault.path}"
            else:
                path.write_text(text.replace(fault.original, fault.replacement))
                try:
                    status, detail = run_tests(root, fault.tests or TESTS, args.timeout)
                finally:
                    path.write_text(text)
            counts[status] += 1
            print(f"{status:8} {fault.name:36} {time.time() - t0:5.0f} s  {detail}", flush=True)
    total = len(faults)
    print(
        f"\n{counts['KILLED']}/{total} faults killed, {counts['SURVIVED']} survived, "
        f"{counts['STALE']} stale, {counts['ERROR']} errors (tests: {', '.join(TESTS)})"
    )
    return 0 if counts["KILLED"] == total else 1


if __name__ == "__main__":
    sys.exit(main())
