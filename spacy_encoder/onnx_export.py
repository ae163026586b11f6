"""The trained encoder as an ONNX graph (`torch.onnx.export`, dynamo), and pipelines
whose tok2vec runs it through onnxruntime (`spacy-encoder.OnnxTok2Vec.v1`, or
`OnnxEncoder.v1` in the `encode` slot; no torch needed to load or run them).

The graph is the eager module on one padded bucket, with dynamic batch and length, its
attention and local convolutions rewritten in forms ONNX Runtime runs faster
(`pytorch.onnx_forms`: the same function, the same trained weights):

    ids (B, T <= max_length, F [+ chars]) int64 [, vectors (B, T, V) float32], lengths (B,) int64
    (the encode slot's encoder: x (B, T, D) float32, lengths (B,) int64)
      -> output (B, T, D) float32, padding rows zero

Hashing into the embedding tables, positions and the padding mask are inside it, as in
the TorchScript file; windows of long docs are planned outside it (`buckets`), as for
the `torch.export` format. Exporting needs `onnx` and `onnxscript` beside torch
(`pip install "spacy-encoder[onnx]"`).
"""
from __future__ import annotations

import io
import json
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from thinc.api import Model

from .deploy import (
    WINDOWS_RULE,
    DeployError,
    check_mode,
    description_path,
    eager_module,
    export_target,
    padded_inputs,
    write_converted,
)
from .nodes import ENCODER, onnx_graph_layer, pipeline_encoders, torch_module
from .onnx_layer import ARCHITECTURE, ENCODER_ARCHITECTURE, OUTPUT, build_onnx_encoder_v1, build_onnx_tok2vec_v1
from .pytorch import onnx_forms
from .rare_words import LAYER_ATTRS as RARE_WORD_ATTRS
from .weights import error_summary, load_pipeline

# The settings an OnnxTok2Vec.v1 (OnnxEncoder.v1) section keeps from the eager tok2vec's
# (encoder's) section.
ONNX_SETTINGS = ("width", "attrs", "max_length", "window_stride", "vectors_width")
ONNX_ENCODER_SETTINGS = ("width", "max_length", "window_stride")
EXPORT_HINT = 'pip install "spacy-encoder[onnx]" (onnx and onnxscript, for torch.onnx.export)'
# The opset every graph is written with, whatever torch's exporter defaults to (it has
# changed between the torch versions pyproject.toml allows), and the onnxruntime that
# runs it (1.20 is the first to support opset 21; pyproject's `onnx` extra): both go
# into the pipeline's meta.json (`requirements`, `spacy_encoder.onnx`).
OPSET = 20
ORT_REQUIREMENT = "onnxruntime>=1.20"
# `deploy onnx --optimize`: what the graph of each mode is.
ONNX_MODES = {
    "none": "float32, equal to eager within 1e-4",
    "int8": "onnxruntime's dynamic int8 quantization (int8 weights per tensor, activations quantized per call) "
    "of every MatMul with a weight: the Linear layers and local convolutions",
}


def export_graph(
    module: torch.nn.Module, *, n_attrs: int, vectors_width: int, max_length: int, width: int = 0, forms: bool = True
) -> bytes:
    """The eager `Tok2VecEncoder` (or `VectorsTok2VecEncoder`; with `width` > 0, the
    `TransformerEncoder` of the `encode` slot) as a serialized ONNX model with dynamic
    batch and length (1 to `max_length`), in eval mode, its attention and local
    convolutions in their export forms (`pytorch.onnx_forms`; `forms=False`: as they
    are, for comparison)."""
    if isinstance(module, torch.jit.ScriptModule):
        raise DeployError("the encoder is already TorchScript; export the eager pipeline it was made from")
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise DeployError(f"exporting to ONNX needs onnx and onnxscript: {EXPORT_HINT}") from None
    module = onnx_forms(module) if forms else module.eval()
    example, shapes, _ = padded_inputs(module, n_attrs=n_attrs, vectors_width=vectors_width, max_length=max_length, width=width)
    names = list(shapes)  # ids, [vectors,] lengths (or x, lengths): the names `onnx_layer` feeds
    exporter_logs = logging.getLogger("torch.onnx")
    level = exporter_logs.level
    exporter_logs.setLevel(logging.ERROR)  # "torchvision is not installed" and the like
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = _export(
                module,
                example,
                dynamo=True,
                dynamic_shapes=shapes,
                input_names=names,
                output_names=[OUTPUT],
                opset_version=OPSET,
                verbose=False,
            )
    finally:
        exporter_logs.setLevel(level)
    buffer = io.BytesIO()
    program.save(buffer)
    return buffer.getvalue()


def _export(*args: Any, **kwargs: Any) -> Any:
    """`torch.onnx.export`, its failures as one `DeployError` line (the exporter's own
    report is pages long)."""
    try:
        return torch.onnx.export(*args, **kwargs)
    except Exception as err:
        raise DeployError(f"torch.onnx.export failed ({error_summary(err)}); please report it with the pipeline's config") from None


def quantize_graph(graph: bytes) -> bytes:
    """`graph` with onnxruntime's dynamic int8 quantization (`ONNX_MODES["int8"]`).
    Signed int8 weights with one scale per tensor: with the export forms' MatMuls they
    ran faster than unsigned ones, and per-channel scales ran no faster (docs/tried.md)."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise DeployError(f"int8 quantization runs on onnxruntime, which is not installed: {EXPORT_HINT}") from None
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # "Please consider to run pre-processing": it changes nothing here
    try:
        with tempfile.TemporaryDirectory() as folder:
            source, target = Path(folder) / "float.onnx", Path(folder) / "int8.onnx"
            source.write_bytes(graph)
            quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=False)
            return target.read_bytes()
    finally:
        root.setLevel(level)


def node_graph(node: Model, optimize: str = "none") -> bytes:
    """The ONNX graph of the eager tok2vec or encoder `node`'s module; `optimize`: one
    of ONNX_MODES."""
    check_mode(optimize, ONNX_MODES)
    attrs = node.attrs
    try:
        module = eager_module(node)  # also for a pipeline trained with torchscript = true
    except ValueError as err:
        raise DeployError(str(err)) from None
    if node.name == ENCODER:
        graph = export_graph(module, n_attrs=0, vectors_width=0, max_length=attrs["max_length"], width=node.get_dim("nI"))
    else:
        # A character encoder's bytes follow the attribute ids in the same input.
        n_inputs = len(attrs["attrs"]) + attrs.get("chars", 0)
        graph = export_graph(
            module, n_attrs=n_inputs, vectors_width=attrs.get("vectors_width", 0), max_length=attrs["max_length"]
        )
    return quantize_graph(graph) if optimize == "int8" else graph


def onnx_node(node: Model, optimize: str = "none") -> Model:
    """An `OnnxTok2Vec.v1` (or, for the `encode` slot, `OnnxEncoder.v1`) node computing
    the eager `node`, its graph exported (`optimize`: one of ONNX_MODES)."""
    attrs = node.attrs
    graph = node_graph(node, optimize)
    if node.name == ENCODER:
        new = build_onnx_encoder_v1(width=node.get_dim("nO"), max_length=attrs["max_length"], window_stride=attrs["window_stride"])
    else:
        new = build_onnx_tok2vec_v1(
            width=node.get_dim("nO"),
            attrs=list(attrs["attrs"]),
            max_length=attrs["max_length"],
            window_stride=attrs["window_stride"],
            vectors_width=attrs.get("vectors_width", 0),
        )
    onnx_graph_layer(new).attrs["graph"] = graph
    # TransformerTok2Vec.v3's unknown words are mapped before the graph: keep the map;
    # and v4's bytes are read before it: keep how many.
    new.attrs.update({key: attrs[key] for key in RARE_WORD_ATTRS + ("chars",) if key in attrs})
    return new


def _onnx_twin(section: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """An eager TransformerTok2Vec or TransformerEncoder block's ONNX twin, or None for
    any other block."""
    architecture = str(section.get("@architectures", ""))
    if architecture.startswith("spacy-encoder.TransformerTok2Vec."):
        kept = {key: section[key] for key in ONNX_SETTINGS if key in section}
        kept.setdefault("vectors_width", 0)
        return {"@architectures": ARCHITECTURE, **kept}
    if architecture.startswith("spacy-encoder.TransformerEncoder."):
        return {"@architectures": ENCODER_ARCHITECTURE, **{key: section[key] for key in ONNX_ENCODER_SETTINGS if key in section}}
    return None


def onnx_pipeline(model_path: Path, output_path: Path, optimize: str = "none") -> List[str]:
    """Write a copy of the pipeline at `model_path` whose spacy-encoder tok2vecs and
    `encode`-slot encoders run as ONNX graphs (inference only, no torch needed to load
    it; `optimize`: one of ONNX_MODES). Returns the names of the components whose
    encoder was converted."""
    check_mode(optimize, ONNX_MODES)
    nlp = load_pipeline(model_path)
    found = list(pipeline_encoders(nlp))
    if not found:
        raise DeployError(f"{model_path}: no spacy-encoder architecture in this pipeline.")
    converted = []
    for name, node in found:
        component = nlp.get_pipe(name)
        try:
            new = onnx_node(node, optimize)
        except DeployError as err:
            raise DeployError(f"{model_path}: {err}.") from None
        if component.model is node:
            component.model = new
        else:
            component.model.replace_node(node, new)
        converted.append(name)
    ours = nlp.meta.setdefault("spacy_encoder", {})
    ours["inference"] = "onnx" if optimize == "none" else f"onnx-{optimize}"
    ours["onnx"] = {"opset": OPSET, "onnxruntime": ORT_REQUIREMENT}
    # `spacy package` makes these the package's install requirements.
    requirements = [r for r in nlp.meta.get("requirements", []) if not r.startswith("onnxruntime")]
    nlp.meta["requirements"] = requirements + [ORT_REQUIREMENT]
    none_found = f"{model_path}: config.cfg has no TransformerTok2Vec or TransformerEncoder section to rewrite."
    write_converted(nlp, output_path, _onnx_twin, none_found)
    return sorted(converted)


def export_onnx_file(model_path: Path, output: Path, *, component: str) -> Dict[str, Any]:
    """Write the encoder of `component` to `output` as a standalone ONNX graph and its
    description to `<output>.json`, as `deploy.export_encoder` does for the torch
    formats. Returns the description."""
    node, description = export_target(model_path, component, "onnx")
    attrs = node.attrs
    try:
        graph = node_graph(node)
    except DeployError as err:
        raise DeployError(f"{model_path}: {err}.") from None
    _, _, inputs = padded_inputs(
        torch_module(node), n_attrs=len(attrs["attrs"]), vectors_width=attrs.get("vectors_width", 0), max_length=attrs["max_length"]
    )
    description.update(
        inputs=inputs,
        output="(batch, seq, width) float32; padding rows are zero",
        runtime="onnxruntime (CPUExecutionProvider)",
        windows=WINDOWS_RULE,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(graph)
    description_path(output).write_text(json.dumps(description, indent=2) + "\n", encoding="utf8")
    return description

