"""`spacy-encoder init config`: a complete training config with our tok2vec, as `spacy
init config` writes one for spaCy's CNN."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from wasabi import msg

from ..init_config import VECTORS_WIDTH
from ..pretrained import DEFAULT as PRETRAINED
from . import group


class Optimize(str, Enum):
    """`efficiency`: the encoder from scratch; `accuracy`: from the shipped pretrained one."""

    efficiency = "efficiency"
    accuracy = "accuracy"


@group("init").command("config")
def init_config_command(
    output: Annotated[Path, typer.Argument(metavar="OUTPUT", help="The config file to write (- for standard output).", allow_dash=True)],
    pipeline: Annotated[str, typer.Option("--pipeline", "-p", help="Comma-separated components, e.g. ner,textcat.")] = "ner",
    optimize: Annotated[
        Optional[Optimize],
        typer.Option(
            "--optimize",
            "-o",
            help=f"efficiency: the encoder from scratch; accuracy: from the shipped pretrained encoder ({PRETRAINED}), the default for English (same speed; see docs/benchmarks.md).",
            show_default="accuracy for --lang en, else efficiency",
        ),
    ] = None,
    vectors: Annotated[bool, typer.Option("--vectors", help="Read static vectors (then train with --paths.vectors, e.g. en_core_web_md).")] = False,
    vectors_width: Annotated[int, typer.Option("--vectors-width", min=1, help="Width of those vectors (300 for en_core_web_md/lg, 50 for GloVe 6B 50d).")] = VECTORS_WIDTH,
    gpu: Annotated[bool, typer.Option("--gpu", "-G", help="Mixed precision and the PyTorch allocator (train with --gpu-id 0).")] = False,
    lang: Annotated[str, typer.Option("--lang", "-l", help="Language code of the pipeline.")] = "en",
    force: Annotated[bool, typer.Option("--force", "-F", help="Overwrite OUTPUT if it exists.")] = False,
) -> None:
    """Write a complete training config whose components share a spacy-encoder
    Transformer tok2vec, laid out as `spacy init config` writes one; `spacy train` takes
    it unchanged (add --paths.train and --paths.dev)."""
    from ..init_config import InitConfigError, default_optimize, make_config

    optimize = optimize or Optimize(default_optimize(lang))
    to_stdout = str(output) == "-"
    if not to_stdout and output.exists() and not force:
        msg.fail(f"{output} exists; use --force to overwrite it", exits=1)
    try:
        config = make_config(
            pipeline.split(","), optimize=optimize.value, vectors_width=vectors_width if vectors else 0, gpu=gpu, lang=lang
        )
    except InitConfigError as err:
        msg.fail(str(err), exits=1)
    header = (
        "# Written by spacy-encoder init config "
        f"--pipeline {pipeline} --optimize {optimize.value}{' --vectors --vectors-width %d' % vectors_width if vectors else ''}"
        f"{' --gpu' if gpu else ''}\n"
        f"# Train: python -m spacy train {'CONFIG' if to_stdout else output} --paths.train TRAIN.spacy --paths.dev DEV.spacy"
        f"{' --paths.vectors en_core_web_md' if vectors else ''}{' --gpu-id 0' if gpu else ''}\n"
    )
    text = header + config.to_str()
    if to_stdout:
        print(text)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    msg.good(f"Wrote {output}: tok2vec + {', '.join(config['nlp']['pipeline'][1:])}, {optimize.value}{', vectors' if vectors else ''}")
    msg.text(header.splitlines()[1][2:])
