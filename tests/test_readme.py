"""The README's examples work when pasted.

Every ```ini block of README.md parses with spaCy's config system as it stands and
resolves: a full config (with [nlp]) on its own, a fragment pasted into
configs/ner.cfg or into the config `python -m spacy init config -p ner` makes (as
the README tells a user to do), with a message naming the block's line. Short
blocks that name only `@architectures` and the sizes are completed by spaCy's
fill-config with the values of configs/. The cheap shell commands of the README run.
"""
import copy
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from confection import Config
from spacy.util import load_config, load_model_from_config, registry

from .conftest import REPO

README = REPO / "README.md"
# `key = value  # comment`: spaCy's parser keeps the comment as part of the value.
INLINE_COMMENT = re.compile(r"^\s*[^\s#\[][^=]*=.*\s#")
TOK2VEC_SIZES = {"width": 128, "depth": 4, "n_heads": 4, "ff_width": 512}


def fenced_blocks(language: str) -> List[Tuple[int, str]]:
    """(line of the opening fence, body) of each ```language block of README.md."""
    blocks, start, body = [], None, []
    for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1):
        if start is None:
            if line.strip() == f"```{language}":
                start, body = number, []
        elif line.strip().startswith("```"):
            blocks.append((start, "\n".join(body) + "\n"))
            start = None
        else:
            body.append(line)
    assert start is None, f"README.md line {start}: ```{language} block never closed"
    return blocks


INI_BLOCKS = fenced_blocks("ini")


@pytest.fixture(scope="module")
def generated_ner_config() -> str:
    """What `python -m spacy init config config.cfg -p ner` writes (not interpolated)."""
    from spacy.cli.init_config import init_config

    return init_config(lang="en", pipeline=["ner"], optimize="efficiency").to_str()


def paste(base: Dict[str, Any], fragment: Dict[str, Any]) -> None:
    """Paste a config fragment into a base config, as a user edits the file: a block
    that names a function (`@architectures`, ...) replaces the base's block of that
    name with all its sub-blocks (a pasted `[components.tok2vec.model]` drops the old
    model's `.embed` and `.encode`); in any other block each setting is set."""
    for key, value in fragment.items():
        if isinstance(value, dict) and not any(k.startswith("@") for k in value):
            paste(base.setdefault(key, {}), value)
        else:
            base[key] = copy.deepcopy(value)


def leaves(section: Dict[str, Any], prefix: Tuple[str, ...] = ()) -> Iterator[Tuple[Tuple[str, ...], Any]]:
    for key, value in section.items():
        if isinstance(value, dict) and value:
            yield from leaves(value, prefix + (key,))
        else:
            yield prefix + (key,), value


def at(config: Dict[str, Any], path: Tuple[str, ...]) -> Any:
    for key in path:
        config = config[key]
    return config


def parse_fragment(text: str) -> Config:
    """A block as spaCy's config parser reads it. A fragment (`[components.tok2vec]`)
    is pasted under blocks that the config has (`[components]`), so the parser is
    given those parent headers first."""
    headers = re.findall(r"^\[([^\]]+)\]\s*$", text, flags=re.M)
    assert headers, "the block has no section ([...] header)"
    parents = {".".join(name.split(".")[:i]) for name in headers for i in range(1, name.count(".") + 1)}
    missing = sorted(parents - set(headers), key=lambda name: name.count("."))
    return Config().from_str("".join(f"[{name}]\n" for name in missing) + text, interpolate=False)


def bases(fragment: Config, generated: str) -> Dict[str, str]:
    """The configs a fragment is pasted into, by what its NER listener reads: a block
    with its own listener goes into both configs/ner.cfg and the config that `spacy
    init config -p ner` writes; an `encode` block into the generated one (whose
    listener reads `${components.tok2vec.model.encode.width}`, as the README says);
    any other block into configs/ner.cfg (whose listener reads
    `${components.tok2vec.model.width}`, as the README's first block)."""
    ner_cfg = {"configs/ner.cfg": (REPO / "configs" / "ner.cfg").read_text(encoding="utf-8")}
    spacy_cfg = {"spacy init config -p ner": generated}
    components = fragment.get("components", {})
    if "tok2vec" in components.get("ner", {}).get("model", {}):
        return {**ner_cfg, **spacy_cfg}
    if "encode" in components.get("tok2vec", {}).get("model", {}):
        return spacy_cfg
    return ner_cfg


def resolve_block(text: str, generated: str) -> None:
    for number, line in enumerate(text.splitlines(), 1):
        assert not INLINE_COMMENT.match(line), (
            f"block line {number}: {line!r}: a comment after a value becomes part of the value; "
            "put it on its own line"
        )
    fragment = parse_fragment(text)
    if "nlp" in fragment:
        resolve_config(fragment, fragment)
        return
    for name, base in bases(fragment, generated).items():
        merged = Config().from_str(base, interpolate=False)
        paste(merged, fragment)
        try:
            resolve_config(merged, fragment)
        except Exception as err:
            raise AssertionError(f"pasted into {name}: {type(err).__name__}: {err}") from err


def resolve_config(merged: Config, fragment: Config) -> None:
    # Written out and read back as a file would be: every ${...} must resolve.
    config = Config().from_str(merged.to_str())
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    filled = nlp.config.interpolate()
    # [initialize] is resolved by `spacy train` only when it starts; resolve it here.
    registry.resolve(filled["initialize"], validate=True)
    # The block's own settings survive the fill unchanged.
    for path, _ in leaves(fragment):
        assert at(filled, path) == at(config, path), f"[{'.'.join(path[:-1])}] {path[-1]} changed in the filled config"


def test_readme_has_the_documented_ini_blocks():
    texts = "\n".join(text for _, text in INI_BLOCKS)
    assert len(INI_BLOCKS) >= 4
    for name in ("TransformerTok2Vec.v1", "TransformerTok2Vec.v2", "TransformerEncoder.v1", "pretrained_tok2vec.v1"):
        assert f"spacy-encoder.{name}" in texts, name


@pytest.mark.parametrize("line,text", INI_BLOCKS, ids=[f"README.md:{line}" for line, _ in INI_BLOCKS])
def test_every_ini_block_of_the_readme_resolves(line, text, generated_ner_config):
    try:
        resolve_block(text, generated_ner_config)
    except Exception as err:  # noqa: BLE001 - any failure, reported with the block's line
        pytest.fail(f"README.md line {line}: the ```ini block does not work when pasted:\n{type(err).__name__}: {err}")


def test_the_readme_encode_slot_block_fits_spacys_generated_listener(generated_ner_config):
    """The block replaces the generated tok2vec; the generated NER listener reads
    `${components.tok2vec.model.encode.width}`, so that is where the width must be."""
    (line, text), = [(line, text) for line, text in INI_BLOCKS if "TransformerEncoder.v1" in text]
    block = parse_fragment(text)
    assert block["components"]["tok2vec"]["model"]["@architectures"] == "spacy.Tok2Vec.v2", line
    generated = Config().from_str(generated_ner_config, interpolate=False)
    assert generated["components"]["ner"]["model"]["tok2vec"]["width"] == "${components.tok2vec.model.encode.width}"
    config = Config().from_str(generated_ner_config, interpolate=False)
    paste(config, block)
    nlp = load_model_from_config(Config().from_str(config.to_str()), auto_fill=True, validate=True)
    assert nlp.config.interpolate()["components"]["ner"]["model"]["tok2vec"]["width"] == 128
    encode = nlp.config["components"]["tok2vec"]["model"]["encode"]
    assert encode["@architectures"] == "spacy-encoder.TransformerEncoder.v1"


# Filling short blocks: the defaults are the values of configs/.


def config_file(name: str) -> Config:
    return load_config(REPO / "configs" / name, interpolate=False)


def filled_tok2vec(config: Config) -> Dict[str, Any]:
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    return dict(nlp.config["components"]["tok2vec"]["model"])


def test_a_v1_block_of_sizes_fills_to_the_ner_config():
    expected = filled_tok2vec(config_file("ner.cfg"))
    config = config_file("ner.cfg")
    config["components"]["tok2vec"]["model"] = {"@architectures": "spacy-encoder.TransformerTok2Vec.v1", **TOK2VEC_SIZES}
    filled = filled_tok2vec(config)
    # .v1's feature_dropout defaults to off: configs written before it had no such
    # setting and keep their meaning; configs/ner.cfg sets 0.15.
    assert filled.pop("feature_dropout") == 0.0 and expected.pop("feature_dropout") == 0.15
    assert filled == expected


def test_a_v2_block_of_sizes_fills_to_the_ner_vectors_config():
    expected = filled_tok2vec(config_file("ner_vectors.cfg"))
    config = config_file("ner_vectors.cfg")
    config["components"]["tok2vec"]["model"] = {
        "@architectures": "spacy-encoder.TransformerTok2Vec.v2", **TOK2VEC_SIZES, "vectors_width": 300,
    }
    assert filled_tok2vec(config) == expected


def test_an_encoder_block_of_sizes_fills_to_the_ner_configs_encoder(generated_ner_config):
    ner = filled_tok2vec(config_file("ner.cfg"))
    config = Config().from_str(generated_ner_config, interpolate=False)
    encode = config["components"]["tok2vec"]["model"]["encode"]
    encode.clear()
    encode.update({"@architectures": "spacy-encoder.TransformerEncoder.v1", **TOK2VEC_SIZES})
    config["components"]["tok2vec"]["model"]["embed"]["width"] = 128
    filled = filled_tok2vec(Config().from_str(config.to_str()))["encode"]
    assert filled.pop("@architectures") == "spacy-encoder.TransformerEncoder.v1"
    assert filled == {key: ner[key] for key in filled}
    assert set(filled) == {
        "width", "depth", "n_heads", "ff_width", "positions", "local_window", "norm_first", "dropout",
        "max_length", "window_stride", "mixed_precision", "grad_scaler_config", "torchscript", "fast_dropout",
    }


@pytest.mark.parametrize(
    "name,given",
    [
        ("spacy-encoder.TransformerTok2Vec.v1", {}),
        ("spacy-encoder.TransformerTok2Vec.v2", {"vectors_width": 300}),
        ("spacy-encoder.TransformerEncoder.v1", {}),
    ],
)
def test_the_sizes_stay_required(name, given):
    """A block without its sizes still fails when the config is resolved, naming them."""
    from confection import ConfigValidationError

    config = Config({"model": {"@architectures": name, "width": 128, **given}})
    with pytest.raises(ConfigValidationError) as err:
        registry.resolve(config, validate=True)
    for size in ("depth", "n_heads", "ff_width"):
        assert size in str(err.value)


# The README's shell commands that are cheap to run.


def run(*args: str, cwd: Path = REPO, timeout: int = 60) -> str:
    done = subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(args)} exited with {done.returncode}:\n{output[-4000:]}"
    assert "Traceback" not in output, output[-4000:]
    return output


def readme_commands() -> List[str]:
    """The `spacy-encoder GROUP COMMAND`s that README.md runs, in its bash blocks and in
    inline code (`spacy-encoder convert raw-text ...`)."""
    code = [text for _, text in fenced_blocks("bash")]
    code += re.findall(r"`([^`\n]+)`", README.read_text(encoding="utf-8"))
    pattern = r"(?:^|\s)(?:spacy-encoder|python -m spacy_encoder\.cli)\s+([a-z][a-z-]+)(?:\s+([a-z][a-z0-9-]+))?"
    found = {" ".join(filter(None, m)) for text in code for m in re.findall(pattern, text, flags=re.M)}
    return sorted(found)


@pytest.mark.timeout(120)
def test_every_spacy_encoder_command_of_the_readme_exists():
    import typer.main

    from spacy_encoder.cli import app

    root = typer.main.get_command(app)
    commands = readme_commands()
    assert {"pretrain list", "deploy export", "inspect attention", "inspect trace", "convert raw-text"} <= set(commands), commands
    missing = []
    for command in commands:
        group_name, _, name = command.partition(" ")
        group = root.commands.get(group_name)
        if not hasattr(group, "commands") or name not in group.commands:
            missing.append(command)
    assert not missing, f"README.md runs `spacy-encoder {missing}`, which the CLI does not have"


@pytest.mark.timeout(120)
def test_the_readme_pretrained_listing_runs():
    listing = run("spacy_encoder.cli", "pretrain", "list")
    assert "en-wiki-128" in listing
    meta = run("spacy_encoder.cli", "pretrain", "show", "en-wiki-128")
    assert "sha256" in meta and "license" in meta


@pytest.mark.timeout(120)
def test_the_readme_fill_config_command_completes_a_block_of_sizes(tmp_path):
    """`python -m spacy init fill-config config.cfg config.cfg` (README, encode slot)
    on configs/ner.cfg with its tok2vec cut to `@architectures` and the sizes."""
    assert "python -m spacy init fill-config config.cfg config.cfg" in README.read_text(encoding="utf-8")
    config = config_file("ner.cfg")
    config["components"]["tok2vec"]["model"] = {"@architectures": "spacy-encoder.TransformerTok2Vec.v1", **TOK2VEC_SIZES}
    path = tmp_path / "config.cfg"
    config.to_disk(path)
    output = run("spacy", "init", "fill-config", str(path), str(path), cwd=tmp_path)
    assert "missing" not in output.lower(), output
    filled = load_config(path, interpolate=False)["components"]["tok2vec"]["model"]
    expected = dict(config_file("ner.cfg")["components"]["tok2vec"]["model"], feature_dropout=0.0)
    assert dict(filled) == expected
