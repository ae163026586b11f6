"""Deployment: the encoder as TorchScript (trainable, frozen or int8), pipelines whose
encoder runs so, and standalone exports.

`script_encoder` swaps the torch module inside a built model for its compilation
(`inference_module`). `script_pipeline` rewrites a trained pipeline so that its encoder is a TorchScript
graph saved in the pipeline's files and its config names the `Scripted*`
architectures, which rebuild no Python module. `export_encoder` writes one encoder as
a file that plain torch can run, with a JSON description of its inputs.
"""
import copy
import json
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from spacy.util import load_config
from thinc.api import Model

from . import __version__
from .nodes import TOK2VEC, encoder_nodes, encoder_shim, pipeline_encoders, torch_module, torch_wrapper
from .pytorch import DocEncoder, VectorsDocEncoder, linear_convolutions
from .shims import quiet_jit, torch_layer
from .weights import load_pipeline

# What ScriptedTok2Vec.v2 keeps of the TransformerTok2Vec.v2/.v3/.v4 section it replaces.
_VECTORS_TOK2VEC_KEYS = ["width", "attrs", "vectors_width", "max_length", "window_stride", "mixed_precision", "grad_scaler_config"]

SCRIPTED = {
    "spacy-encoder.TransformerTok2Vec.v1": (
        "spacy-encoder.ScriptedTok2Vec.v1",
        ["width", "attrs", "max_length", "window_stride", "mixed_precision", "grad_scaler_config"],
    ),
    "spacy-encoder.TransformerTok2Vec.v2": (
        "spacy-encoder.ScriptedTok2Vec.v2",
        _VECTORS_TOK2VEC_KEYS,
    ),
    # v3's settings live in the graph (mix_pieces) or in the layer's saved attrs
    # (rare_word_dropout and the training counts), which the scripted layer keeps.
    "spacy-encoder.TransformerTok2Vec.v3": (
        "spacy-encoder.ScriptedTok2Vec.v2",
        _VECTORS_TOK2VEC_KEYS,
    ),
    # v4's character encoder is in the graph; how many bytes it reads (attr `chars`)
    # is in the layer's saved attrs, as v3's counts are.
    "spacy-encoder.TransformerTok2Vec.v4": (
        "spacy-encoder.ScriptedTok2Vec.v2",
        _VECTORS_TOK2VEC_KEYS,
    ),
    "spacy-encoder.TransformerEncoder.v1": (
        "spacy-encoder.ScriptedEncoder.v1",
        ["width", "max_length", "window_stride", "mixed_precision", "grad_scaler_config"],
    ),
    # The scripted graph holds output_scale as a constant: the same scripted name.
    "spacy-encoder.TransformerEncoder.v2": (
        "spacy-encoder.ScriptedEncoder.v1",
        ["width", "max_length", "window_stride", "mixed_precision", "grad_scaler_config"],
    ),
}


WINDOWS_RULE = (
    "docs longer than max_length: windows of max_length tokens starting every window_stride "
    "tokens, the last aligned to the doc's end; window i owns the tokens from the previous "
    "window's hand-over point up to (start[i+1] + start[i] + max_length) // 2 (the doc's end "
    "for the last window)"
)


class DeployError(ValueError):
    """The pipeline cannot be scripted or exported as asked."""


# `script_encoder(optimize=...)`: what each inference-only mode does to the module.
INFERENCE_MODES = {
    "none": "TorchScript, trainable; equal to eager",
    "freeze": "TorchScript frozen for inference (weights folded in as constants); equal to eager",
    "int8": "frozen TorchScript with int8 dynamic quantization of every Linear layer and local convolution (CPU only)",
}


def check_mode(optimize: str, modes: Dict[str, str]) -> None:
    """Raise ValueError unless `optimize` names one of `modes` (INFERENCE_MODES or
    onnx_export.ONNX_MODES)."""
    if optimize not in modes:
        raise ValueError(f"optimize must be one of {', '.join(modes)}, not {optimize!r}")


def inference_module(module: torch.nn.Module, optimize: str) -> torch.jit.ScriptModule:
    """A TorchScript compilation of the eager `module` for inference: `optimize` is one
    of INFERENCE_MODES. "freeze" and "int8" cannot be trained (the shim refuses)."""
    check_mode(optimize, INFERENCE_MODES)
    if optimize == "int8":
        if any(p.device.type != "cpu" for p in module.parameters()):
            raise ValueError("optimize = 'int8' runs on CPU only (fbgemm); move the pipeline to CPU first")
        with warnings.catch_warnings():
            # torch 2.13 points eager-mode quantization users to torchao; it still works.
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message=r".*(torchao|quantiz|migrat).*")
            # A copy in eval mode: the eager module is left as it was. Its local
            # convolutions become Linear layers first, so that they are quantized too.
            module = linear_convolutions(copy.deepcopy(module).eval())
            module = torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    with quiet_jit():
        scripted = torch.jit.script(module)
        if optimize == "none":
            return scripted
        preserved = ["forward_with_weights"] if hasattr(scripted, "forward_with_weights") else []
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            return torch.jit.freeze(scripted.eval(), preserved_attrs=preserved)


def eager_module(node: Model) -> torch.nn.Module:
    """The eager torch module of the encoder `node`: its own, or, for a TorchScript
    encoder trained as such (`torchscript = true`), a new eager module of its config
    holding its weights. A graph loaded from a `Scripted*` pipeline has no config to
    rebuild from: ValueError, one line."""
    shim = encoder_shim(node)
    module = shim._model
    if not isinstance(module, torch.jit.ScriptModule):
        return module
    if shim._make_module is None:
        raise ValueError(
            "this encoder is a TorchScript graph written by `spacy-encoder deploy script`, without the config "
            "to rebuild its eager module; convert the pipeline it was made from"
        )
    eager = shim._make_module()
    own = module.state_dict()  # also lists buffers the eager module keeps out of its state_dict
    eager.load_state_dict({name: own[name] for name in eager.state_dict()})
    device = next(module.parameters()).device
    return eager.to(device).train(module.training)


def script_encoder(model: Model, optimize: str = "none") -> Model:
    """Swap the torch module inside one of our layers (or any model holding them, e.g.
    a pipeline component's model) for its TorchScript compilation, weights included.
    `optimize`: one of INFERENCE_MODES ("freeze" and "int8" give an inference-only
    module). Returns the model, changed in place."""
    for node in list(encoder_nodes(model)):
        wrapper = torch_wrapper(node)
        if wrapper.name == "pytorch_script" and optimize == "none":
            continue
        shim = encoder_shim(node)
        scripted = torch_layer(
            inference_module(eager_module(node), optimize),
            scripted=True,
            mixed_precision=shim._mixed_precision,
            grad_scaler=shim._grad_scaler,
            make_module=shim._make_module,
            fresh=shim._fresh,
        )
        scripted.set_dim("nO", wrapper.get_dim("nO"))
        node.replace_node(wrapper, scripted)
    return model




def rewrite_sections(section: Any, rewrite: Callable[[Dict[str, Any]], Optional[Dict[str, Any]]]) -> Tuple[Any, int]:
    """A config section with every block that `rewrite` returns a new block for
    replaced by it (`rewrite` returns None to leave a block and look inside it), and
    how many were replaced."""
    if not isinstance(section, dict):
        return section, 0
    new = rewrite(section)
    if new is not None:
        return new, 1
    count = 0
    out = {}
    for key, value in section.items():
        out[key], n = rewrite_sections(value, rewrite)
        count += n
    return out, count


def _scripted_twin(section: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """An eager encoder block's scripted twin, or None for any other block."""
    architecture = section.get("@architectures")
    if architecture not in SCRIPTED:
        return None
    scripted_name, keep = SCRIPTED[architecture]
    return {"@architectures": scripted_name, **{k: section[k] for k in keep}}


def script_pipeline(model_path: Path, output_path: Path, optimize: str = "none") -> List[str]:
    """Write a copy of the pipeline at `model_path` whose encoders run as TorchScript.
    `optimize`: one of `INFERENCE_MODES` ("freeze", "int8": inference only).
    Returns the names of the components whose encoder was scripted."""
    if optimize not in INFERENCE_MODES:
        raise DeployError(f"--optimize must be one of {', '.join(INFERENCE_MODES)}, not {optimize!r}.")
    nlp = load_pipeline(model_path)
    scripted = sorted({name for name, _ in pipeline_encoders(nlp)})
    if not scripted:
        raise DeployError(f"{model_path}: no spacy-encoder architecture in this pipeline.")
    for name, component in nlp.components:
        if name in scripted:
            try:
                script_encoder(component.model, optimize=optimize)
            except ValueError as err:
                raise DeployError(f"{model_path}: {err}.") from None
    nlp.meta.setdefault("spacy_encoder", {})["inference"] = optimize
    write_converted(nlp, output_path, _scripted_twin, f"{model_path}: config.cfg has no eager spacy-encoder section to rewrite.")
    return scripted


def write_converted(
    nlp: Any, output_path: Path, twin: Callable[[Dict[str, Any]], Optional[Dict[str, Any]]], none_found: str
) -> None:
    """Save the converted `nlp` at `output_path` with its config's encoder blocks
    rewritten by `twin` (`DeployError(none_found)` when there is none). Written in a
    folder beside it first and moved there once complete, so that a failed conversion
    leaves no half-written pipeline."""
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{output_path.name}.partial-", dir=output_path.parent))
    try:
        nlp.to_disk(partial)
        config = load_config(partial / "config.cfg", interpolate=False)
        config["components"], n_sections = rewrite_sections(dict(config["components"]), twin)
        if n_sections == 0:
            raise DeployError(none_found)
        config.to_disk(partial / "config.cfg")
        if output_path.exists():
            shutil.copytree(partial, output_path, dirs_exist_ok=True)
        else:
            partial.rename(output_path)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def description_path(output: Path) -> Path:
    """Where the JSON description of an exported encoder goes: `<output>.json`."""
    return output.with_name(output.name + ".json")


def export_target(model_path: Path, component: str, fmt: str) -> Tuple[Model, Dict[str, Any]]:
    """The eager tok2vec node of `component` in the pipeline at `model_path`, and the
    part of an export's description that every format shares."""
    nlp = load_pipeline(model_path)
    tok2vecs = list(pipeline_encoders(nlp, (TOK2VEC,)))
    nodes = [node for name, node in tok2vecs if name == component]
    if not nodes:
        found = sorted({name for name, _ in tok2vecs})
        raise DeployError(
            f"{model_path}: component '{component}' has no spacy-encoder tok2vec; "
            f"components with one: {', '.join(found) or 'none'}."
        )
    node = nodes[0]
    attrs = node.attrs
    if attrs.get("rare_word_dropout", 0.0) > 0.0 and attrs.get("norm_ids") is not None:
        raise DeployError(
            f"{model_path}: component '{component}' maps unknown words to one id before the encoder "
            "(rare_word_dropout), which a standalone file does not carry; write a pipeline with "
            "`spacy-encoder deploy script` or `deploy onnx` instead."
        )
    if attrs.get("chars"):
        raise DeployError(
            f"{model_path}: component '{component}' reads each token's bytes (chars = {attrs['chars']}), which "
            "a standalone file does not describe yet; write a pipeline with `spacy-encoder deploy script` or "
            "`deploy onnx` instead."
        )
    description: Dict[str, Any] = {
        "format": fmt,
        "spacy_encoder_version": __version__,
        "component": component,
        "attrs": attrs["attrs"],
        "width": node.get_dim("nO"),
        "max_length": attrs["max_length"],
        "window_stride": attrs["window_stride"],
        "feature_ids": (
            "doc.to_array(attrs): spaCy's uint64 attribute ids, reinterpreted (numpy .view) "
            "as int64; hashing into the embedding tables happens inside the module"
        ),
    }
    if attrs.get("vectors_width", 0):
        description["vectors_width"] = attrs["vectors_width"]
        description["vectors"] = (
            "each token's row of the pipeline's nlp.vocab.vectors (float32, zeros where the table "
            "has no row for the token's ORTH key), looked up outside the module as spaCy's "
            "StaticVectors does: the table is saved once, with the pipeline's vocab, and the "
            "key-to-row map is spaCy's, so the file holds only the trained projection"
        )
    return node, description


# The most rows a padded-batch export declares; run_windows' buckets hold far fewer.
MAX_BATCH = 65536


def padded_inputs(
    module: torch.nn.Module, *, n_attrs: int, vectors_width: int, max_length: int, width: int = 0
) -> Tuple[Tuple[torch.Tensor, ...], Dict[str, Any], Dict[str, str]]:
    """What `torch.export` and `torch.onnx.export` trace the eager module on, one padded
    bucket: an example (ids, [vectors,] lengths) on the module's device, their dynamic
    shapes (1 to MAX_BATCH rows of 1 to `max_length` tokens, keyed by input name), and
    the inputs' description for the export's JSON. `width` > 0: the encoder stack of
    the `encode` slot (`TransformerEncoder`), whose first input is x (B, T, width)
    float32 instead of ids."""
    device = next(module.parameters()).device
    lengths = torch.tensor([4, 2], dtype=torch.int64, device=device)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    seq = torch.export.Dim("seq", min=1, max=max_length)
    if width:
        first, example_input = "x", torch.zeros((2, 4, width), device=device)
        inputs = {"x": f"(batch, seq <= {max_length}, {width}) float32, padded"}
    else:
        first, example_input = "ids", torch.zeros((2, 4, n_attrs), dtype=torch.int64, device=device)
        inputs = {"ids": f"(batch, seq <= {max_length}, n_attrs) int64, padded"}
    shapes: Dict[str, Any] = {first: {0: batch, 1: seq}}
    example: Tuple[torch.Tensor, ...] = (example_input,)
    if vectors_width:
        example += (torch.zeros((2, 4, vectors_width), device=device),)
        shapes["vectors"] = {0: batch, 1: seq}
        inputs["vectors"] = f"(batch, seq, {vectors_width}) float32, padded"
    example += (lengths,)
    shapes["lengths"] = {0: batch}
    inputs["lengths"] = "(batch,) int64, real tokens per row"
    return example, shapes, inputs


def export_encoder(model_path: Path, output: Path, *, component: str, fmt: str) -> Dict[str, Any]:
    """Write the encoder of `component` to `output` (TorchScript or torch.export) and
    its description to `<output>.json`. Returns the description. (ONNX:
    `onnx_export.export_onnx_file`.)"""
    node, description = export_target(model_path, component, fmt)
    module = torch_module(node).eval()
    attrs = node.attrs
    vectors_width = attrs.get("vectors_width", 0)
    output.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torchscript":
        with quiet_jit():
            doc_encoder = VectorsDocEncoder if vectors_width else DocEncoder
            scripted = torch.jit.script(doc_encoder(module, attrs["max_length"], attrs["window_stride"]))
            torch.jit.save(scripted, str(output))
        description["inputs"] = {"ids": "(n_tokens, n_attrs) int64, one doc"}
        if vectors_width:
            description["inputs"]["vectors"] = f"(n_tokens, {vectors_width}) float32, one doc"
        description["output"] = "(n_tokens, width) float32; long docs are windowed and stitched inside"
    elif fmt == "export":
        if isinstance(module, torch.jit.ScriptModule):
            raise DeployError(f"{model_path}: the encoder is already TorchScript; export the eager pipeline.")
        example, shapes, inputs = padded_inputs(
            module, n_attrs=len(attrs["attrs"]), vectors_width=vectors_width, max_length=attrs["max_length"]
        )
        program = torch.export.export(module, example, dynamic_shapes=shapes)
        torch.export.save(program, str(output))
        description["inputs"] = inputs
        description["output"] = "(batch, seq, width) float32; padding rows are zero"
        description["windows"] = WINDOWS_RULE
    else:
        raise DeployError(f"Unknown format {fmt!r}: expected 'torchscript' or 'export'.")
    description_path(output).write_text(json.dumps(description, indent=2) + "\n", encoding="utf8")
    return description
