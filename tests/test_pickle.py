"""`pickle.dumps(nlp)` works for every form of our encoder (spaCy's
`test_issue4725_1`; spawn-based multiprocessing pickles `nlp` the same way)."""
import pickle

import numpy
import pytest
import spacy

from spacy_encoder.deploy import script_pipeline

from .test_training import NER_DATA, examples, nlp_from_config, train

SMALL = dict(width=32, depth=1, n_heads=2, ff_width=64, max_length=16, window_stride=12)
TEXTS = [t for t, _ in NER_DATA] + ["", "A much longer text about Paris , Berlin and Rome , " * 3]


@pytest.mark.parametrize("form", ["eager", "torchscript", "script"])
def test_pickled_pipeline_predicts_the_same(form, tmp_path):
    nlp = nlp_from_config("ner", **SMALL, torchscript=form == "torchscript")
    train(nlp, examples(nlp, "ner"), 3)
    nlp.to_disk(tmp_path / "trained")
    if form == "script":
        script_pipeline(tmp_path / "trained", tmp_path / "scripted")
        nlp = spacy.load(tmp_path / "scripted")
        assert nlp.get_pipe("tok2vec").model.name.startswith("spacy-encoder")
    else:
        nlp = spacy.load(tmp_path / "trained")
    shims = {type(shim).__name__ for layer in nlp.get_pipe("tok2vec").model.walk() for shim in layer.shims}
    assert shims == ({"EncoderShim"} if form == "eager" else {"ScriptedEncoderShim"})
    copy = pickle.loads(pickle.dumps(nlp))
    for a, b in zip(nlp.pipe(TEXTS), copy.pipe(TEXTS)):
        numpy.testing.assert_array_equal(a.tensor, b.tensor)
        assert [(e.start_char, e.end_char, e.label_) for e in a.ents] == [(e.start_char, e.end_char, e.label_) for e in b.ents]
