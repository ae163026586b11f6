"""`spacy-encoder pretrained`: the encoders that ship inside the package."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from wasabi import msg

from . import app


@app.command("pretrained")
def list_pretrained(
    name: Annotated[Optional[str], typer.Argument(metavar="NAME", help="Show one encoder's meta and check its weights.")] = None,
) -> None:
    """List the pretrained encoders shipped with spacy-encoder (or show one), for
    `[initialize] init_tok2vec = {"@misc":"spacy-encoder.pretrained_tok2vec.v1","name":NAME}`."""
    import srsly

    from ..pretrained import PretrainedError, available, meta, weights_path

    if name is None:
        shipped = available()
        if not shipped:
            msg.warn("No pretrained encoders in this installation")
            return
        rows = [
            (key, f"{info['words_seen']:,}", info["objective"]["@architectures"], f"width {info['architecture']['width']}, depth {info['architecture']['depth']}")
            for key, info in shipped.items()
        ]
        msg.table(rows, header=("name", "words seen", "objective", "architecture"), divider=True)
        return
    try:
        info, path = meta(name), weights_path(name)
    except PretrainedError as err:
        msg.fail(str(err))
        raise typer.Exit(1) from None
    print(srsly.json_dumps(info, indent=2))
    msg.good(f"{path}: sha256 checked")


@app.command("pretrain-slice")
def pretrain_slice(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="Config whose tok2vec and [pretraining] to use.")],
    output_dir: Annotated[Path, typer.Argument(metavar="OUTPUT_DIR", help="Folder of the pretraining's modelN.bin files.")],
    raw_text: Annotated[Path, typer.Argument(metavar="RAW_TEXT", help="This slice's JSONL (`spacy-encoder wiki-text --slice K`).")],
    slice_: Annotated[int, typer.Option("--slice", min=0, help="Slice K: 0 starts from scratch; K > 0 resumes from OUTPUT_DIR/model{K-1}.bin as epoch K.")] = 0,
    vectors: Annotated[Optional[str], typer.Option("--vectors", help="Vectors for the vectors objective (--paths.vectors).")] = None,
    save_every: Annotated[int, typer.Option("--save-every", min=1, help="Also save OUTPUT_DIR/model{K}.temp.bin every N batches.")] = 500,
    gpu_id: Annotated[int, typer.Option("--gpu-id", help="GPU id, or -1 for CPU.")] = -1,
) -> None:
    """One epoch of `spacy pretrain` per slice of text, so that every slice is seen once
    and a longer pretraining continues where the last one stopped (`--resume-path`,
    `--epoch-resume`). spaCy's progress table shows words, loss and words/s."""
    import subprocess
    import sys

    for path, what in ((config_path, "config"), (raw_text, "raw text")):
        if not path.exists():
            msg.fail(f"{path}: no such {what} file")
            raise typer.Exit(1)
    args = [
        sys.executable, "-m", "spacy", "pretrain", str(config_path), str(output_dir),
        "--paths.raw_text", str(raw_text), "--pretraining.max_epochs", str(slice_ + 1),
        "--pretraining.n_save_every", str(save_every), "--gpu-id", str(gpu_id),
    ]
    if vectors:
        args += ["--paths.vectors", vectors]
    if slice_ > 0:
        resume = output_dir / f"model{slice_ - 1}.bin"
        if not resume.exists():
            msg.fail(f"{resume}: missing; pretrain slice {slice_ - 1} first (slices are epochs, in order)")
            raise typer.Exit(1)
        args += ["--resume-path", str(resume), "--epoch-resume", str(slice_)]
    msg.info(" ".join(args[1:]))
    raise typer.Exit(subprocess.call(args))
