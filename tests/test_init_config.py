"""`spacy-encoder init-config`: complete configs from a list of components, equal in
their settings to the project's configs, that `spacy train` takes unchanged."""
from __future__ import annotations

import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training import Example
from spacy.util import load_config
from thinc.api import Config
from typer.testing import CliRunner

from spacy_encoder.cli import app
from spacy_encoder.init_config import InitConfigError, make_config

from .conftest import REPO
from .test_training import MULTILABEL_DATA, NER_DATA, TEXTCAT_DATA

# (optimize, vectors) -> the suffix of the project's config with those settings.
VARIANTS = {("efficiency", 0): "", ("accuracy", 0): "_pretrained", ("efficiency", 300): "_vectors", ("accuracy", 300): "_vectors_pretrained"}


@pytest.mark.parametrize("task", ["ner", "textcat", "textcat_multilabel"])
@pytest.mark.parametrize("variant", sorted(VARIANTS), ids=[VARIANTS[v].strip("_") or "base" for v in sorted(VARIANTS)])
def test_init_config_gives_the_projects_configs(task, variant):
    """Every setting of configs/<task><variant>.cfg (defaults filled; comments aside) is
    what make_config gives: the files are init-config's output, not a second source."""
    optimize, vectors_width = variant
    ours = make_config([task], optimize=optimize, vectors_width=vectors_width)
    shipped = load_config(REPO / "configs" / f"{task}{VARIANTS[variant]}.cfg")
    shipped = spacy.util.load_model_from_config(shipped, auto_fill=True, validate=True).config  # defaults filled
    assert ours["pretraining"]["objective"]["@architectures"] == "spacy.PretrainVectors.v1"
    if variant == ("efficiency", 0):
        # The one difference: the from-scratch configs pretrain with spaCy's character
        # objective; make_config gives every config the vectors objective the shipped
        # encoder was made with.
        assert shipped["pretraining"]["objective"] == {"@architectures": "spacy.PretrainCharacters.v1", "maxout_pieces": 3, "hidden_size": 300, "n_characters": 4}
        shipped["pretraining"]["objective"] = ours["pretraining"]["objective"]
    assert list(ours) == list(shipped)
    for section in ours:
        assert ours[section] == shipped[section], section


def write_corpus(path, nlp, tasks):
    docs = []
    for text, ents in NER_DATA if "ner" in tasks else []:
        docs.append(Example.from_dict(nlp.make_doc(text), {"entities": ents}).reference)
    for name, data in (("textcat", TEXTCAT_DATA), ("textcat_multilabel", MULTILABEL_DATA)):
        if name in tasks:
            docs += [Example.from_dict(nlp.make_doc(text), {"cats": cats}).reference for text, cats in data]
    DocBin(docs=docs).to_disk(path)


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "args",
    [
        ["--pipeline", "ner"],
        ["--pipeline", "textcat", "--optimize", "efficiency"],
        ["--pipeline", "textcat_multilabel", "--optimize", "accuracy"],
        ["--pipeline", "ner,textcat", "--optimize", "accuracy", "--vectors", "--vectors-width", "8"],
    ],
    ids=["ner", "textcat", "multilabel-accuracy", "ner+textcat-accuracy-vectors"],
)
def test_init_config_output_trains_with_spacy_train(tmp_path, args):
    from spacy.cli.train import train

    from .test_vectors import add_vectors

    config_path = tmp_path / "config.cfg"
    result = CliRunner().invoke(app, ["init", "config", str(config_path), *args])
    assert result.exit_code == 0, result.output
    tasks = args[1].split(",")
    nlp = spacy.blank("en")
    write_corpus(tmp_path / "train.spacy", nlp, tasks)
    overrides = {"paths.train": str(tmp_path / "train.spacy"), "paths.dev": str(tmp_path / "train.spacy"), "training.max_steps": 20, "training.eval_frequency": 10}
    if "--vectors" in args:
        words = sorted({t.text for text, _ in NER_DATA + TEXTCAT_DATA for t in nlp.make_doc(text)})
        add_vectors(nlp, words)
        nlp.to_disk(tmp_path / "vectors")
        overrides["paths.vectors"] = str(tmp_path / "vectors")
    train(config_path, tmp_path / "out", overrides=overrides)
    trained = spacy.load(tmp_path / "out" / "model-last")
    assert trained.pipe_names == ["tok2vec", *tasks]
    doc = trained("Angela Merkel visited Paris .")
    assert doc.tensor.shape == (len(doc), 128)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"pipeline": ["nerr"]}, "--pipeline: unknown components nerr"),
        ({"pipeline": ["ner", "ner"]}, "named twice"),
        ({"pipeline": []}, "--pipeline: no components"),
        ({"pipeline": ["ner"], "optimize": "fast"}, "--optimize"),
        ({"pipeline": ["ner"], "optimize": "accuracy", "lang": "de"}, "--optimize accuracy starts from the English encoder"),
    ],
)
def test_init_config_bad_options_name_the_option(kwargs, field):
    with pytest.raises(InitConfigError, match=field):
        make_config(**kwargs)


def test_init_config_cli_fails_in_one_line_and_never_overwrites(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["init", "config", str(tmp_path / "c.cfg"), "--pipeline", "ner,tagge"])
    assert result.exit_code == 1 and "unknown components tagge" in result.output
    existing = tmp_path / "mine.cfg"
    existing.write_text("# my config\n")
    result = runner.invoke(app, ["init", "config", str(existing)])
    assert result.exit_code == 1 and "--force" in result.output
    assert existing.read_text() == "# my config\n"
    result = runner.invoke(app, ["init", "config", "-", "--pipeline", "tagger,parser"])
    assert result.exit_code == 0
    # English starts from the shipped encoder by default: TransformerTok2Vec.v2.
    assert "spacy-encoder.TransformerTok2Vec.v2" in result.output and "spacy.Tok2VecListener.v1" in result.output


@pytest.mark.parametrize("lang, start", [("en", "accuracy"), ("de", "efficiency")])
def test_init_config_starts_english_from_the_shipped_encoder_by_default(tmp_path, lang, start):
    result = CliRunner().invoke(app, ["init", "config", str(tmp_path / "c.cfg"), "--pipeline", "ner", "--lang", lang])
    assert result.exit_code == 0, result.output
    config = load_config(tmp_path / "c.cfg", interpolate=False)
    assert f"--optimize {start}" in (tmp_path / "c.cfg").read_text().splitlines()[0]
    assert config == Config().from_str(make_config(["ner"], optimize=start, lang=lang).to_str(), interpolate=False)
    init_tok2vec = config["initialize"]["init_tok2vec"]
    assert ("spacy-encoder.pretrained_tok2vec.v1" in str(init_tok2vec)) == (start == "accuracy")
