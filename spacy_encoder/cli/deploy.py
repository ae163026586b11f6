"""`spacy-encoder deploy script|onnx|export`."""
from enum import Enum
from pathlib import Path

import typer
from wasabi import msg

from . import group


class ExportFormat(str, Enum):
    """`torchscript`: a `torch.jit` file; `export`: a `torch.export` program (.pt2);
    `onnx`: an ONNX graph for onnxruntime."""

    torchscript = "torchscript"
    export = "export"
    onnx = "onnx"


class Optimize(str, Enum):
    """`none`: TorchScript, trainable, equal to eager; `freeze`: frozen for inference,
    equal to eager; `int8`: frozen, int8 dynamic quantization of the Linear layers and local convolutions (CPU)."""

    none = "none"
    freeze = "freeze"
    int8 = "int8"


@group("deploy").command("script")
def script_command(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="Trained pipeline directory (or package path)."),
    output_path: Path = typer.Argument(..., metavar="OUTPUT_DIR", help="Directory for the scripted pipeline."),
    optimize: Optimize = typer.Option(
        Optimize.none,
        "--optimize",
        help="none (trainable), freeze (inference only, equal to eager) or int8 (inference only, CPU, "
        "quantized Linear layers and convolutions).",
    ),
) -> None:
    """Turn a trained pipeline into one whose encoder runs as TorchScript; with
    --optimize freeze or int8, an inference-only one that runs faster on CPU."""
    from ..deploy import DeployError, script_pipeline

    _require_pipeline(model_path)
    try:
        components = script_pipeline(model_path, output_path, optimize=optimize.value)
    except DeployError as err:
        msg.fail(str(err), exits=1)
    how = "" if optimize is Optimize.none else f" (--optimize {optimize.value}: inference only)"
    msg.good(f"Scripted the encoder of {', '.join(components)}{how}; saved to {output_path}")
    msg.text(f"Load it with spacy.load('{output_path}'). A TorchScript graph is code: load only pipelines you trust.")


class OnnxOptimize(str, Enum):
    """`none`: float32, equal to eager; `int8`: onnxruntime's dynamic int8 quantization
    of the Linear layers and local convolutions."""

    none = "none"
    int8 = "int8"


@group("deploy").command("export")
def export_command(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="Trained pipeline directory (or package path)."),
    output: Path = typer.Argument(..., metavar="OUTPUT", help="Output file, e.g. encoder.pt (its description goes to OUTPUT.json)."),
    component: str = typer.Option("tok2vec", "--component", "-c", help="Component holding the encoder."),
    fmt: ExportFormat = typer.Option(ExportFormat.torchscript, "--format", "-f", help="torchscript (torch.jit), export (torch.export) or onnx (onnxruntime)."),
) -> None:
    """Write a trained encoder as a standalone file: feature ids in, vectors out."""
    from ..deploy import DeployError, description_path, export_encoder

    _require_pipeline(model_path)
    try:
        if fmt is ExportFormat.onnx:
            from ..onnx_export import export_onnx_file

            description = export_onnx_file(model_path, output, component=component)
        else:
            description = export_encoder(model_path, output, component=component, fmt=fmt.value)
    except DeployError as err:
        msg.fail(str(err), exits=1)
    msg.good(f"Wrote {output} ({fmt.value}) and {description_path(output)}")
    msg.text(f"inputs: {description['inputs']}; attrs: {description['attrs']}")


@group("deploy").command("onnx")
def onnx_command(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="Trained pipeline directory (or package path)."),
    output_path: Path = typer.Argument(..., metavar="OUTPUT_DIR", help="Directory for the ONNX pipeline."),
    optimize: OnnxOptimize = typer.Option(
        OnnxOptimize.none,
        "--optimize",
        help="none (float32, equal to eager) or int8 (onnxruntime's dynamic int8 quantization of the Linear "
        "layers and convolutions: faster in batches).",
    ),
) -> None:
    """Turn a trained pipeline into one whose tok2vec runs as an ONNX graph on
    onnxruntime: inference only, and loadable without torch; with --optimize int8,
    quantized by onnxruntime."""
    from ..deploy import DeployError
    from ..onnx_export import onnx_pipeline

    _require_pipeline(model_path)
    try:
        components = onnx_pipeline(model_path, output_path, optimize=optimize.value)
    except DeployError as err:
        msg.fail(str(err), exits=1)
    how = "" if optimize is OnnxOptimize.none else f" (--optimize {optimize.value})"
    msg.good(f"Exported the encoder of {', '.join(components)} to ONNX{how}; saved to {output_path}")
    msg.text(f"Load it with spacy.load('{output_path}'); it needs onnxruntime (pip install \"spacy-encoder[onnx]\"), not torch.")


def _require_pipeline(path: Path) -> None:
    if not (path / "config.cfg").is_file():
        what = "does not exist" if not path.exists() else "has no config.cfg"
        msg.fail(f"{path} {what}: expected a pipeline folder written by nlp.to_disk or spacy train", exits=1)
