"""Registry entries: every name resolves from the installed entry points, and bad
settings fail at config resolution with the field named."""
import importlib.metadata
import sys
import subprocess

import pytest
import spacy
from confection import ConfigValidationError
from spacy.util import load_config

from .conftest import REPO


def our_entry_points():
    eps = importlib.metadata.entry_points(group="spacy_architectures")
    return [ep for ep in eps if ep.name.startswith("spacy-encoder.")]


def test_entry_points_are_installed():
    names = {ep.name for ep in our_entry_points()}
    assert {"spacy-encoder.TransformerTok2Vec.v1", "spacy-encoder.TransformerEncoder.v1"} <= names


@pytest.mark.parametrize("name", sorted(ep.name for ep in our_entry_points()))
def test_every_registered_name_resolves(name):
    func = spacy.registry.architectures.get(name)
    assert callable(func)


def test_names_resolve_without_importing_the_package():
    code = (
        "import sys, spacy\n"
        "f = spacy.registry.architectures.get('spacy-encoder.TransformerTok2Vec.v1')\n"
        "print(f.__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "spacy_encoder.architectures"


@pytest.mark.parametrize("config_name", ["ner", "textcat", "textcat_multilabel"])
def test_configs_build(config_name):
    config = load_config(REPO / "configs" / f"{config_name}.cfg")
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    assert nlp.pipe_names == ["tok2vec", config_name]


@pytest.mark.parametrize(
    "setting,value,field",
    [
        ("n_heads", 5, "n_heads"),
        ("depth", 0, "depth"),
        ("positions", "alibi", "positions"),
        ("window_stride", 1024, "window_stride"),
        ("attrs", ["NORM", "COLOUR", "SUFFIX", "SHAPE"], "attrs"),
        ("rows", [100, 100], "rows"),
        ("width", "wide", "width"),  # wrong type: confection's own validation
    ],
)
def test_bad_settings_fail_at_startup_naming_the_field(setting, value, field):
    config = load_config(REPO / "configs" / "ner.cfg")
    config["components"]["tok2vec"]["model"][setting] = value
    with pytest.raises(ConfigValidationError) as err:
        spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    assert field in str(err.value)


def test_spacy_train_reports_bad_setting_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "spacy", "train", str(REPO / "configs" / "ner.cfg"),
         "--components.tok2vec.model.n_heads", "5",
         "--paths.train", str(tmp_path / "x.spacy"), "--paths.dev", str(tmp_path / "x.spacy")],
        capture_output=True, text=True,
    )
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "n_heads" in output and "divisible" in output
    assert "Traceback" not in output
