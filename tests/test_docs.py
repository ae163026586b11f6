"""The documentation works when pasted: README.md and every page of docs/.

- Every ```ini block parses with spaCy's config system and resolves: a full config
  (with [nlp]) on its own, a fragment pasted into the config it belongs to
  (configs/ner.cfg, configs/textcat.cfg, or the config `python -m spacy init config -p
  ner` makes), with a message naming the page and line. Short blocks that name only
  `@architectures` and the sizes fill to the values of configs/.
- Every `spacy-encoder` / `python -m spacy_encoder.cli` command that a page names
  exists in the typer app (a group and its subcommand), and every option that a
  ```bash block gives it is one of its options.
- The cheap documented commands run: `init config`, `pretrain list` and `show`, and,
  on a tiny trained pipeline, the `deploy`, `inspect` and `annotate text` lines and the
  Python blocks that load `training/ner/model-best`. Every ```python block compiles.
- Every relative link and anchor resolves; every `configs/`, `tools/`, `benchmarks/`
  and `corpus/` path that a block names exists; docs/projects.md names every workflow
  and command of project.yml.
- docs/configuration.md lists every argument of every registered name, with the
  builder's type (architectures), default and the version that introduced it.
"""
from __future__ import annotations

import copy
import inspect
import json
import os
import re
import shlex
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import srsly
from confection import Config
from spacy.util import load_config, load_model_from_config, registry

from .conftest import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
CONFIGURATION = DOCS / "configuration.md"
# `key = value  # comment`: spaCy's parser keeps the comment as part of the value.
INLINE_COMMENT = re.compile(r"^\s*[^\s#\[][^=]*=.*\s#")
# configs/ner.cfg's sizes (2 layers); the vectors configs' encoder has 4 (VECTORS_SIZES).
TOK2VEC_SIZES = {"width": 128, "depth": 2, "n_heads": 4, "ff_width": 512}
VECTORS_SIZES = dict(TOK2VEC_SIZES, depth=4)
COMMAND = re.compile(r"(?:^|(?<=[\s`(]))(?:spacy-encoder|python -m spacy_encoder\.cli)\s+([a-z][a-z0-9-]*)(?:[ \t]+([a-z][a-z0-9-]*))?", re.M)
# The registries of pyproject.toml's entry point groups.
REGISTRIES = {"spacy_architectures": "architectures", "spacy_misc": "misc", "spacy_callbacks": "callbacks", "spacy_loggers": "loggers"}


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def fenced_blocks(path: Path, language: str) -> List[Tuple[int, str]]:
    """(line of the opening fence, body) of each ```language block of a page."""
    blocks, start, body = [], None, []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if start is None:
            if line.strip() == f"```{language}":
                start, body = number, []
        elif line.strip().startswith("```"):
            blocks.append((start, "\n".join(body) + "\n"))
            start = None
        else:
            body.append(line)
    assert start is None, f"{rel(path)} line {start}: ```{language} block never closed"
    return blocks


def all_blocks(language: str) -> List[Tuple[str, int, str]]:
    return [(rel(page), line, text) for page in PAGES for line, text in fenced_blocks(page, language)]


def shell_lines(text: str) -> List[str]:
    """The commands of a bash block: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.split(" #")[0].strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


INI_BLOCKS = all_blocks("ini")
BASH_BLOCKS = all_blocks("bash")
PYTHON_BLOCKS = all_blocks("python")


def block_id(page: str, line: int, *_: Any) -> str:
    return f"{page}:{line}"


# --- ```ini blocks ----------------------------------------------------------------------


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


def config_text(name: str) -> str:
    return (REPO / "configs" / name).read_text(encoding="utf-8")


def bases(fragment: Config, generated: str) -> Dict[str, str]:
    """The configs a fragment is pasted into, by what it holds: a text classifier's
    block goes into configs/textcat.cfg; a block with its own NER listener into both
    configs/ner.cfg and the config that `spacy init config -p ner` writes; an `encode`
    block into the generated one (whose listener reads
    `${components.tok2vec.model.encode.width}`); any other block into configs/ner.cfg
    (whose listener reads `${components.tok2vec.model.width}`)."""
    components = fragment.get("components", {})
    if "textcat" in components:
        return {"configs/textcat.cfg": config_text("textcat.cfg")}
    ner_cfg = {"configs/ner.cfg": config_text("ner.cfg")}
    spacy_cfg = {"spacy init config -p ner": generated}
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
    # [training] and [initialize] are resolved by `spacy train` only when it starts
    # (callbacks, loggers, init_tok2vec); resolve them here.
    registry.resolve(filled["training"], validate=True)
    registry.resolve(filled["initialize"], validate=True)
    # The block's own settings survive the fill unchanged.
    for path, _ in leaves(fragment):
        assert at(filled, path) == at(config, path), f"[{'.'.join(path[:-1])}] {path[-1]} changed in the filled config"


def test_the_docs_show_every_registered_name_in_a_config_block():
    texts = "\n".join(text for _, _, text in INI_BLOCKS)
    for name in (
        "TransformerTok2Vec.v1", "TransformerTok2Vec.v2", "TransformerEncoder.v1", "TextCatReduce.v1",
        "pretrained_tok2vec.v1", "start_from_pretrained.v1", "start_from_pretrained.v2", "StopCleanly.v1", "ThroughputLogger.v1",
    ):
        assert f"spacy-encoder.{name}" in texts, name


@pytest.mark.parametrize("page,line,text", INI_BLOCKS, ids=[block_id(*b) for b in INI_BLOCKS])
def test_every_ini_block_resolves(page, line, text, generated_ner_config):
    try:
        resolve_block(text, generated_ner_config)
    except Exception as err:  # noqa: BLE001 - any failure, reported with the block's line
        pytest.fail(f"{page} line {line}: the ```ini block does not work when pasted:\n{type(err).__name__}: {err}")


def test_the_encode_slot_block_fits_spacys_generated_listener(generated_ner_config):
    """The block replaces the generated tok2vec; the generated NER listener reads
    `${components.tok2vec.model.encode.width}`, so that is where the width must be."""
    (page, line, text), = [b for b in INI_BLOCKS if "TransformerEncoder.v1" in b[2]]
    block = parse_fragment(text)
    assert block["components"]["tok2vec"]["model"]["@architectures"] == "spacy.Tok2Vec.v2", (page, line)
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
        "@architectures": "spacy-encoder.TransformerTok2Vec.v2", **VECTORS_SIZES, "vectors_width": 300,
    }
    # configs/ner_vectors.cfg is v3 with rare_word_dropout; everything else is v2's defaults.
    filled = filled_tok2vec(config)
    assert expected.pop("@architectures") == "spacy-encoder.TransformerTok2Vec.v3" and filled.pop("@architectures").endswith(".v2")
    assert expected.pop("mix_pieces") == 1 and expected.pop("rare_word_dropout") == 0.5
    assert filled == expected


def test_a_v3_block_of_sizes_fills_to_the_ner_vectors_config():
    expected = filled_tok2vec(config_file("ner_vectors.cfg"))
    config = config_file("ner_vectors.cfg")
    config["components"]["tok2vec"]["model"] = {
        "@architectures": "spacy-encoder.TransformerTok2Vec.v3", **VECTORS_SIZES, "vectors_width": 300, "rare_word_dropout": 0.5,
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


@pytest.mark.timeout(120)
def test_the_fill_config_command_completes_a_block_of_sizes(tmp_path):
    """`python -m spacy init fill-config config.cfg config.cfg` (docs/configuration.md)
    on configs/ner.cfg with its tok2vec cut to `@architectures` and the sizes."""
    assert "python -m spacy init fill-config config.cfg config.cfg" in CONFIGURATION.read_text(encoding="utf-8")
    config = config_file("ner.cfg")
    config["components"]["tok2vec"]["model"] = {"@architectures": "spacy-encoder.TransformerTok2Vec.v1", **TOK2VEC_SIZES}
    path = tmp_path / "config.cfg"
    config.to_disk(path)
    output = run([sys.executable, "-m", "spacy", "init", "fill-config", str(path), str(path)], cwd=tmp_path)
    assert "missing" not in output.lower(), output
    filled = load_config(path, interpolate=False)["components"]["tok2vec"]["model"]
    expected = dict(config_file("ner.cfg")["components"]["tok2vec"]["model"], feature_dropout=0.0)
    assert dict(filled) == expected


# --- commands ---------------------------------------------------------------------------


def cli_tree():
    """The click command of `spacy-encoder`, with its groups and commands."""
    import typer.main

    from spacy_encoder.cli import app

    return typer.main.get_command(app)


def named_commands() -> List[Tuple[str, int, str, Optional[str], bool]]:
    """(page, line, first word, second word, in a bash block) of every `spacy-encoder`
    command named in a page: in ```bash blocks and in inline code."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        bash_lines = set()
        for start, body in fenced_blocks(page, "bash"):
            for offset, line in enumerate(body.splitlines(), 1):
                bash_lines.add(start + offset)
        for number, line in enumerate(text.splitlines(), 1):
            in_bash = number in bash_lines
            if in_bash:
                code = [] if line.lstrip().startswith("#") else [line.split(" #")[0]]
            else:
                code = re.findall(r"`([^`\n]+)`", line)
            for snippet in code:
                for match in COMMAND.finditer(snippet):
                    found.append((rel(page), number, match.group(1), match.group(2), in_bash))
    return found


def resolve_command(root, first: str, second: Optional[str], in_bash: bool) -> Tuple[Any, str]:
    """The click command that `spacy-encoder FIRST [SECOND]` runs, or None and why.
    (typer carries its own copy of click: a group is what has `commands`.)"""
    command = root.commands.get(first)
    if command is None:
        return None, f"`spacy-encoder {first}` does not exist"
    if hasattr(command, "commands"):
        if second is None:
            return (None, f"`spacy-encoder {first}` is a group: name its command") if in_bash else (command, "")
        sub = command.commands.get(second)
        if sub is None:
            return None, f"`spacy-encoder {first} {second}` does not exist ({first}: {', '.join(sorted(command.commands))})"
        return sub, ""
    if in_bash and second is not None and not any(p.param_type_name == "argument" for p in command.params):
        return None, f"`spacy-encoder {first}` takes no argument `{second}`"
    return command, ""


@pytest.mark.timeout(120)
def test_every_command_named_in_the_docs_exists():
    root = cli_tree()
    named = named_commands()
    assert {("init", "config"), ("convert", "wikigold"), ("deploy", "script"), ("pretrain", "list")} <= {
        (first, second) for _, _, first, second, _ in named
    }
    missing = []
    for page, line, first, second, in_bash in named:
        command, why = resolve_command(root, first, second, in_bash)
        if command is None:
            missing.append(f"{page}:{line}: {why}")
    assert not missing, "commands named in the docs that `spacy-encoder` lacks:\n" + "\n".join(sorted(set(missing)))


def app_commands(root) -> List[str]:
    """`GROUP COMMAND` (or `COMMAND`) of every command a user sees: hidden ones left out."""
    names = []
    for name, command in root.commands.items():
        if getattr(command, "hidden", False):
            continue
        if hasattr(command, "commands"):
            names += [f"{name} {sub}" for sub, c in command.commands.items() if not getattr(c, "hidden", False)]
        else:
            names.append(name)
    return sorted(names)


@pytest.mark.timeout(120)
def test_the_cli_page_documents_every_command():
    named = {f"{first} {second}" if second else first for page, _, first, second, _ in named_commands() if page == "docs/cli.md"}
    undocumented = [name for name in app_commands(cli_tree()) if name not in named]
    assert not undocumented, f"docs/cli.md does not document `spacy-encoder {undocumented}`"


def documented_invocations() -> List[Tuple[str, int, List[str]]]:
    """(page, line, argv after `spacy-encoder`) of every command line of a ```bash block."""
    calls = []
    for page, start, body in BASH_BLOCKS:
        for line in shell_lines(body):
            for segment in re.split(r"\s*(?:&&|\|\||;|\|)\s*", line):
                match = re.search(r"(?:^|\s)(?:spacy-encoder|python -m spacy_encoder\.cli)\s+(.*)$", segment)
                if match:
                    try:
                        argv = shlex.split(match.group(1))
                    except ValueError:
                        argv = match.group(1).split()
                    calls.append((page, start, argv))
    return calls


@pytest.mark.timeout(120)
def test_every_option_given_in_the_docs_exists():
    """`spacy-encoder GROUP COMMAND --option`: the option is one of the command's."""
    root = cli_tree()
    wrong = []
    for page, line, argv in documented_invocations():
        second = argv[1] if len(argv) > 1 and re.fullmatch(r"[a-z][a-z0-9-]*", argv[1]) else None
        command, _ = resolve_command(root, argv[0], second, True)
        if command is None:
            continue  # reported by test_every_command_named_in_the_docs_exists
        options = {opt for param in command.params if param.param_type_name == "option" for opt in param.opts + param.secondary_opts}
        options.add("--help")
        for arg in argv:
            flag = arg.split("=")[0]
            if re.fullmatch(r"--?[a-zA-Z][\w-]*", flag) and flag not in options:
                wrong.append(f"{page} (block at line {line}): `{' '.join(argv[:2])}` has no option {flag}")
    assert not wrong, "\n".join(sorted(set(wrong)))


def run(argv: List[str], cwd: Path, timeout: int = 120) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": "PASSIVE"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(argv)} exited with {done.returncode}:\n{output[-4000:]}"
    assert "Traceback" not in output, output[-4000:]
    return output


def documented_lines(prefix: str) -> List[Tuple[str, int, str]]:
    """(page, block line, command) of every ```bash line that starts with PREFIX."""
    return [(page, start, line) for page, start, body in BASH_BLOCKS for line in shell_lines(body) if line.startswith(prefix)]


def spacy_encoder(line: str) -> List[str]:
    """A documented `spacy-encoder ...` line as the argv that runs this checkout."""
    argv = shlex.split(line)
    assert argv[0] == "spacy-encoder", line
    return [sys.executable, "-m", "spacy_encoder.cli", *argv[1:]]


INIT_CONFIG_LINES = documented_lines("spacy-encoder init config ")


def test_the_docs_write_configs_with_init_config():
    pages = {page for page, _, _ in INIT_CONFIG_LINES}
    assert {"README.md", "docs/configuration.md", "docs/gpu.md"} <= pages, pages


@pytest.mark.timeout(180)
@pytest.mark.parametrize("page,line,command", INIT_CONFIG_LINES, ids=[f"{p}:{n}:{c.split()[3]}" for p, n, c in INIT_CONFIG_LINES])
def test_the_documented_init_config_commands_write_configs_that_load(page, line, command, tmp_path):
    run(spacy_encoder(command), cwd=tmp_path)
    output = tmp_path / shlex.split(command)[3]
    config = load_config(output, interpolate=False)
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    assert nlp.get_pipe("tok2vec").model.name, f"{page}:{line}"


@pytest.mark.timeout(120)
def test_the_documented_pretrain_listing_runs(tmp_path):
    lines = documented_lines("spacy-encoder pretrain list") + documented_lines("spacy-encoder pretrain show ")
    assert len(lines) >= 2, lines
    for page, line, command in lines:
        output = run(spacy_encoder(command), cwd=tmp_path)
        assert "en-wiki-128" in output, f"{page}:{line}: {command}\n{output}"
        if " show " in command:
            assert "sha256" in output and "license" in output, output


# Commands and Python blocks that need a trained pipeline run on a tiny one.

MODEL_PATH = "training/ner/model-best"
# The documented commands that take a pipeline and run in seconds.
ON_A_PIPELINE = ("spacy-encoder inspect trace ", "spacy-encoder inspect attention ", "spacy-encoder deploy script ",
                 "spacy-encoder deploy export ", "spacy-encoder annotate text ")


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory) -> Path:
    """A folder holding `training/ner/model-best`: configs/ner.cfg, initialized on two
    sentences and updated twice (the documented commands need trained weights, not
    good ones)."""
    import spacy
    from spacy.training import Example

    root = tmp_path_factory.mktemp("docs")
    config = load_config(REPO / "configs" / "ner.cfg", overrides={"components.tok2vec.model.depth": 1}, interpolate=True)
    nlp = load_model_from_config(config, auto_fill=True)
    data = [("Ada Lovelace was born in London .", [(0, 12, "PER"), (25, 31, "LOC")]),
            ("EU rejects German call to boycott British lamb .", [(0, 2, "ORG"), (11, 17, "MISC"), (34, 41, "MISC")])]
    examples = [Example.from_dict(nlp.make_doc(text), {"entities": ents}) for text, ents in data]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(2):
        nlp.update(examples, sgd=optimizer)
    (root / MODEL_PATH).parent.mkdir(parents=True)
    nlp.to_disk(root / MODEL_PATH)
    assert spacy.load(root / MODEL_PATH).pipe_names == ["tok2vec", "ner"]
    return root


PIPELINE_LINES = [line for prefix in ON_A_PIPELINE for line in documented_lines(prefix) if MODEL_PATH in line[2]]


def test_the_docs_show_the_pipeline_commands():
    shown = {" ".join(command.split()[:3]) for _, _, command in PIPELINE_LINES}
    assert shown == {prefix.strip() for prefix in ON_A_PIPELINE}, shown


@pytest.mark.timeout(300)
@pytest.mark.parametrize("page,line,command", PIPELINE_LINES, ids=[f"{p}:{n}:{' '.join(c.split()[1:3])}" for p, n, c in PIPELINE_LINES])
def test_the_documented_pipeline_commands_run(page, line, command, tiny_pipeline):
    """Each runs in a folder that holds only `training/ner/model-best`."""
    output = run(spacy_encoder(command), cwd=tiny_pipeline, timeout=240)
    assert "✘" not in output, f"{page}:{line}: {command}\n{output}"


PYTHON_ON_A_PIPELINE = [b for b in PYTHON_BLOCKS if MODEL_PATH in b[2] and "require_gpu" not in b[2]]


@pytest.mark.parametrize("page,line,text", PYTHON_BLOCKS, ids=[block_id(*b) for b in PYTHON_BLOCKS])
def test_every_python_block_compiles(page, line, text):
    compile(text, f"{page}:{line}", "exec")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("page,line,text", PYTHON_ON_A_PIPELINE, ids=[block_id(*b) for b in PYTHON_ON_A_PIPELINE])
def test_the_python_blocks_that_load_a_pipeline_run(page, line, text, tiny_pipeline):
    script = tiny_pipeline / f"block_{line}.py"
    script.write_text(text, encoding="utf-8")
    run([sys.executable, str(script)], cwd=tiny_pipeline, timeout=240)


# --- links, paths and the project ------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def prose(path: Path) -> str:
    """A page without its fenced blocks."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return "\n".join(lines)


def anchors(path: Path) -> set:
    return {slug(heading) for heading in re.findall(r"^#{1,6} (.+)$", prose(path), flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=[rel(p) for p in PAGES])
def test_every_relative_link_resolves(page):
    text = prose(page)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path_part, _, anchor = target.partition("#")
        path = (page.parent / path_part).resolve() if path_part else page
        if not path.exists():
            broken.append(f"{target}: no file {path}")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading with the anchor #{anchor} in {rel(path)}")
    assert not broken, f"{rel(page)}:\n" + "\n".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=[rel(p) for p in PAGES])
def test_every_repository_path_in_the_code_blocks_exists(page):
    code = "\n".join(text for language in ("bash", "ini", "python") for _, text in fenced_blocks(page, language))
    paths = set(re.findall(r"(?<![\w./-])((?:configs|tools|benchmarks|corpus)/[\w./-]+\.(?:cfg|py|txt|tsv))\b", code))
    missing = sorted(path for path in paths if not (REPO / path).exists())
    assert not missing, f"{rel(page)} names files that are not in the repository: {missing}"


def test_the_projects_page_names_every_workflow_and_command():
    project = srsly.read_yaml(REPO / "project.yml")
    text = (DOCS / "projects.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([a-z0-9-]+)`", text))
    missing = [f"workflow {name}" for name in project["workflows"] if name not in named]
    missing += [f"command {c['name']}" for c in project["commands"] if c["name"] not in named]
    assert not missing, f"docs/projects.md does not name: {missing}"


# --- the configuration reference -------------------------------------------------------


def registered_names() -> List[Tuple[str, str]]:
    """(registry, name) of every name that pyproject.toml's entry points register."""
    names = []
    for group, registry_name in REGISTRIES.items():
        names += [(registry_name, ep.name) for ep in entry_points(group=group) if ep.name.startswith("spacy-encoder.")]
    return sorted(names)


def reference_tables() -> Dict[str, Dict[str, Dict[str, str]]]:
    """docs/configuration.md's settings tables, by the name they document: the name
    is the section heading (`## spacy-encoder.X.v1`) or a line `` `spacy-encoder.X.v1`: ``
    just before the table."""
    tables: Dict[str, Dict[str, Dict[str, str]]] = {}
    name, header = None, None
    for line in CONFIGURATION.read_text(encoding="utf-8").splitlines():
        heading = re.fullmatch(r"#{2,6} (spacy-encoder\.\S+)", line.strip())
        label = re.fullmatch(r"`(spacy-encoder\.[^`]+)`:", line.strip())
        if heading or label:
            name, header = (heading or label).group(1), None
        elif line.startswith("#"):
            name, header = None, None
        elif line.startswith("| setting |"):
            header = [cell.strip() for cell in line.strip("|").split("|")]
        elif header and line.startswith("|") and not line.startswith("|---"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            row = dict(zip(header, cells))
            assert name, f"docs/configuration.md: a settings row outside a named section: {line}"
            tables.setdefault(name, {})[row["setting"].strip("`")] = row
        elif not line.startswith("|"):
            header = None
    return tables


def annotation_text(annotation: Any) -> str:
    """A type annotation as configuration.md writes it: `List[str]`, `Optional[int]`."""
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", text)


REGISTERED = registered_names()


def test_the_reference_covers_every_registered_name():
    text = CONFIGURATION.read_text(encoding="utf-8")
    headings = set(re.findall(r"^#{2,6} (.+)$", text, flags=re.M))
    missing = [name for _, name in REGISTERED if not any(name in h or name.rsplit(".", 1)[0] in h for h in headings)]
    assert not missing, f"docs/configuration.md has no section for {missing}"
    assert len(REGISTERED) >= 12, REGISTERED


@pytest.mark.parametrize("registry_name,name", REGISTERED, ids=[name for _, name in REGISTERED])
def test_the_reference_lists_every_argument_with_its_default(registry_name, name):
    function = getattr(registry, registry_name).get(name)
    parameters = inspect.signature(function).parameters
    documented = reference_tables().get(name, {})
    where = f"docs/configuration.md, {name}"
    assert set(documented) == set(parameters), (
        f"{where}: missing {sorted(set(parameters) - set(documented))}, not arguments {sorted(set(documented) - set(parameters))}"
    )
    version = int(name.rsplit(".v", 1)[1])

    def came_with(argument: str) -> int:
        """The first version of this name that has `argument` (walking back while the
        older versions are registered and have it)."""
        first = version
        for older in range(version - 1, 0, -1):
            try:
                function = getattr(registry, registry_name).get(name.rsplit(".v", 1)[0] + f".v{older}")
            except Exception:  # noqa: BLE001 - no older version registered
                return 1 if older == version - 1 else first
            if argument not in inspect.signature(function).parameters:
                return first
            first = older
        return first
    for argument, parameter in parameters.items():
        row = documented[argument]
        if parameter.default is inspect.Parameter.empty:
            assert row["default"] == "required", f"{where}: {argument} is required, documented default {row['default']}"
        else:
            value = row["default"].strip("`")
            assert row["default"].startswith("`"), f"{where}: {argument} has a default, documented {row['default']}"
            assert json.loads(value) == parameter.default, f"{where}: {argument} defaults to {parameter.default!r}, documented {value}"
        since = f"`.v{came_with(argument)}`"
        assert row["since"] == since, f"{where}: {argument} came with {since}, documented {row['since']}"
        if registry_name == "architectures":
            assert row["type"] == f"`{annotation_text(parameter.annotation)}`", f"{where}: {argument} is {parameter.annotation}"
        assert row["meaning"], f"{where}: {argument} has no meaning"
