"""`spacy-encoder pretrain list|show|slice|ship`: the encoders that ship inside the
package, and how one is made."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from wasabi import msg

from ..pretrained import DEFAULT, PretrainedError
from . import group


@group("pretrain").command("list")
def list_pretrained() -> None:
    """List the pretrained encoders shipped with spacy-encoder, for
    `[initialize] init_tok2vec = {"@misc":"spacy-encoder.pretrained_tok2vec.v1","name":NAME}`."""
    from ..pretrained import available

    shipped = available()
    if not shipped:
        msg.warn("No pretrained encoders in this installation")
        return
    rows = [
        (key, f"{info['words_seen']:,}", info["objective"]["@architectures"], f"width {info['architecture']['width']}, depth {info['architecture']['depth']}")
        for key, info in shipped.items()
    ]
    msg.table(rows, header=("name", "words seen", "objective", "architecture"), divider=True)


@group("pretrain").command("show")
def show_pretrained(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A shipped encoder (see `spacy-encoder pretrain list`).")] = DEFAULT,
) -> None:
    """Show one shipped encoder's meta and check its weights against the meta's sha256."""
    import srsly

    from ..pretrained import meta, weights_path

    try:
        info, path = meta(name), weights_path(name)
    except PretrainedError as err:
        msg.fail(str(err))
        raise typer.Exit(1) from None
    print(srsly.json_dumps(info, indent=2))
    msg.good(f"{path}: sha256 checked")


@group("pretrain").command("slice")
def pretrain_slice(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="Config whose tok2vec and [pretraining] to use.")],
    output_dir: Annotated[Path, typer.Argument(metavar="OUTPUT_DIR", help="Folder of the pretraining's modelN.bin files.")],
    raw_text: Annotated[Path, typer.Argument(metavar="RAW_TEXT", help="This slice's JSONL (`spacy-encoder convert wiki-text --slice K`).")],
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


@group("pretrain").command("ship")
def ship_pretrained(
    weights: Annotated[Path, typer.Argument(metavar="WEIGHTS", help="A modelN.bin (or modelN.temp.bin) written by `spacy pretrain`.")],
    config_path: Annotated[Path, typer.Option("--config", help="The config it was pretrained with.")],
    raw_text: Annotated[Path, typer.Option("--raw-text", help="The JSONL it was pretrained on.")],
    command: Annotated[str, typer.Option("--command", help="The `spacy pretrain` command, for the meta.")],
    machine: Annotated[str, typer.Option("--machine", help="Where and how it ran, e.g. '2-core x86_64 CPU, one torch thread'.")],
    name: Annotated[str, typer.Option("--name", help="The name to ship it under.")] = DEFAULT,
    log: Annotated[Optional[Path], typer.Option("--log", help="spaCy's log.jsonl of the run (default: beside WEIGHTS); for a .temp.bin, a copy taken with it.")] = None,
    continues: Annotated[Optional[str], typer.Option("--continues", metavar="NAME", help="The shipped encoder this run resumed from (--resume-path): its words, text and time are added to this run's.")] = None,
    text: Annotated[Optional[str], typer.Option("--text", help="What the text is, for the meta (default: English Wikipedia as `spacy-encoder convert wiki-text` converts it).")] = None,
    output_dir: Annotated[Optional[Path], typer.Option("--output-dir", help="Where NAME.bin and NAME.json go (default: the package's pretrained/ folder).")] = None,
) -> None:
    """Ship a `spacy pretrain` output inside the package: WEIGHTS copied to NAME.bin,
    and NAME.json with the architecture the weights fit, the objective, the text, the
    words seen, the loss and speed, license and credit, and the sha256."""
    from ..pretrained.ship import WIKIPEDIA_TEXT, pretraining_meta, ship

    for path, what in ((weights, "weights"), (config_path, "config"), (raw_text, "raw text")):
        if not path.exists():
            msg.fail(f"{path}: no such {what} file", exits=1)
    try:
        info = pretraining_meta(
            weights, config_path, raw_text, name=name, command=command, machine=machine, text=text or WIKIPEDIA_TEXT,
            log=log, continues=continues,
        )
    except (PretrainedError, OSError) as err:
        msg.fail(str(err), exits=1)
    target = ship(weights, info, output_dir)
    msg.good(f"{target}: {target.stat().st_size / 2**20:.1f} MB, {info['words_seen']:,} words seen, sha256 {info['sha256'][:12]}")
