"""The encoder alone on onnxruntime: the graph `deploy onnx` writes (the export forms of
`pytorch.onnx_forms`) against the module exported as it is, its dynamic int8 formats,
and torch eager and torch int8 (`deploy script --optimize int8`) beside them, on padded
batches of three shapes (untrained weights of the bench's NER pipeline: a trained
encoder costs the same).

    python benchmarks/onnx_quantization.py             # forms, int8 formats, torch
    python benchmarks/onnx_quantization.py --threads   # the float graph's session thread options

Prints the median milliseconds of `session.run` / the module's forward per shape: the
median of 5 interleaved rounds of 20 runs each.
"""
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic

from spacy_encoder import bench
from spacy_encoder.deploy import inference_module
from spacy_encoder.nodes import encoder_nodes, torch_module
from spacy_encoder.onnx_export import export_graph, node_graph

SHAPES = {"1x14": (1, 14), "64x14": (64, 14), "32x140": (32, 140)}
FORMATS = {"QInt8": (QuantType.QInt8, False), "QUInt8": (QuantType.QUInt8, False), "QInt8 per channel": (QuantType.QInt8, True)}


def median_ms(run, n: int = 30) -> float:
    for _ in range(5):
        run()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def session(graph: bytes, threads: int = 0, spinning: bool = True) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def compare_threads(graph: bytes, n_attrs: int) -> None:
    sessions = {
        "default": session(graph),
        "1 thread": session(graph, threads=1),
        "2 threads": session(graph, threads=2),
        "2 threads, no spinning": session(graph, threads=2, spinning=False),
        "no spinning": session(graph, spinning=False),
    }
    rng = numpy.random.default_rng(0)
    for shape, (batch, length) in SHAPES.items():
        ids = rng.integers(-(2**62), 2**62, (batch, length, n_attrs)).astype("int64")
        feeds = {"ids": ids, "lengths": numpy.full((batch,), length, dtype="int64")}
        rounds = {name: [] for name in sessions}
        for _ in range(5):
            for name, s in sessions.items():
                rounds[name].append(median_ms(lambda: s.run(["output"], feeds), n=20))
        print(f"{shape} (ms): " + " | ".join(f"{name} {statistics.median(v):.2f}" for name, v in rounds.items()))


def main() -> None:
    nlp = bench.build_pipeline("ner-ours")
    node = next(encoder_nodes(nlp.get_pipe("tok2vec").model))
    folder = Path(tempfile.mkdtemp())
    (folder / "float.onnx").write_bytes(node_graph(node))
    if "--threads" in sys.argv[1:]:
        compare_threads((folder / "float.onnx").read_bytes(), len(node.attrs["attrs"]))
        return
    attrs = node.attrs
    plain = export_graph(torch_module(node), n_attrs=len(attrs["attrs"]), vectors_width=0, max_length=attrs["max_length"], forms=False)
    (folder / "plain.onnx").write_bytes(plain)
    graphs = {"ORT float, module as it is": folder / "plain.onnx", "ORT float": folder / "float.onnx"}
    for name, (weight_type, per_channel) in FORMATS.items():
        path = folder / f"{name.replace(' ', '-')}.onnx"
        quantize_dynamic(str(folder / "float.onnx"), str(path), weight_type=weight_type, per_channel=per_channel)
        graphs[f"ORT int8 {name}"] = path
    module = torch_module(node).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        int8 = inference_module(module, "int8")
    runs = {name: session(path.read_bytes()).run for name, path in graphs.items()}
    rng = numpy.random.default_rng(0)
    for shape, (batch, length) in SHAPES.items():
        ids = rng.integers(-(2**62), 2**62, (batch, length, len(node.attrs["attrs"]))).astype("int64")
        lengths = numpy.full((batch,), length, dtype="int64")
        feeds = {"ids": ids, "lengths": lengths}
        ids_t, lengths_t = torch.from_numpy(ids), torch.from_numpy(lengths)
        calls = {name: (lambda run=run: run(["output"], feeds)) for name, run in runs.items()}
        calls["torch eager"] = lambda: module(ids_t, lengths_t)
        calls["torch int8"] = lambda: int8(ids_t, lengths_t)
        rounds = {name: [] for name in calls}
        with torch.inference_mode():
            for _ in range(5):
                for name, call in calls.items():
                    rounds[name].append(median_ms(call, n=20))
        print(f"{shape} (ms): " + " | ".join(f"{name} {statistics.median(v):.2f}" for name, v in rounds.items()))

if __name__ == "__main__":
    main()
