"""`spacy-encoder deploy script|onnx|export`."""
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Iterator

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
    from ..deploy import script_pipeline

    model_path = _require_pipeline(model_path)
    with _one_line_errors():
        components = script_pipeline(model_path, output_path, optimize=optimize.value)
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
    from ..deploy import description_path, export_encoder

    model_path = _require_pipeline(model_path)
    with _one_line_errors():
        if fmt is ExportFormat.onnx:
            from ..onnx_export import export_onnx_file

            description = export_onnx_file(model_path, output, component=component)
        else:
            description = export_encoder(model_path, output, component=component, fmt=fmt.value)
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
    from ..onnx_export import onnx_pipeline

    model_path = _require_pipeline(model_path)
    with _one_line_errors():
        components = onnx_pipeline(model_path, output_path, optimize=optimize.value)
    how = "" if optimize is OnnxOptimize.none else f" (--optimize {optimize.value})"
    msg.good(f"Exported the encoder of {', '.join(components)} to ONNX{how}; saved to {output_path}")
    msg.text(f"Load it with spacy.load('{output_path}'); it needs onnxruntime (pip install \"spacy-encoder[onnx]\"), not torch.")


def _require_pipeline(path: Path) -> Path:
    """The folder of the pipeline MODEL names: a pipeline folder, or the data folder of
    an installed pipeline package; else one line and exit 1."""
    if (path / "config.cfg").is_file():
        return path
    installed = _package_folder(str(path))
    if installed is not None:
        return installed
    what = "does not exist" if not path.exists() else "has no config.cfg"
    msg.fail(
        f"{path} {what}: expected a pipeline folder written by nlp.to_disk or spacy train, or an installed "
        "pipeline package",
        exits=1,
    )
    raise AssertionError  # msg.fail exits


def _package_folder(name: str) -> "Path | None":
    """The folder holding config.cfg inside the installed pipeline package `name`
    (`spacy package` puts it at <package>/<lang>_<name>-<version>/), or None."""
    import importlib.util

    from spacy.util import is_package

    if "/" in name or not is_package(name):
        return None
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    found = sorted(Path(spec.origin).parent.glob("*/config.cfg"))
    return found[0].parent if len(found) == 1 else None


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """A conversion's expected failures as one line and exit 1: what it refuses
    (`DeployError`), a damaged pipeline (`WeightsError`), and a missing exporter."""
    from ..deploy import DeployError
    from ..weights import WeightsError

    try:
        yield
    except (DeployError, WeightsError, ImportError) as err:
        msg.fail(" ".join(str(err).split()), exits=1)
