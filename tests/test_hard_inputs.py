"""Hard inputs and faults: nothing crashes badly, nothing is lost.

Every case, and where it is tested:

Texts through nlp() and nlp.pipe() (here; NER and textcat pipelines):
  1. the empty string                      2. whitespace only
  3. a single token                        4. a 100,000-token doc
  5. a doc of only punctuation             6. control characters
  7. zero-width characters (ZWSP, ZWJ, BOM) 8. emoji
  9. Arabic (right-to-left script)        10. Chinese/Japanese (CJK)
 11. one token of 10,000 characters       12. a batch mixing all of these (pipe == one by one)
 13. mixed precision on GPU with empty docs in the batch: no NaN (CUDA only)
Corpus conversion (tests/test_corpora.py::test_broken_input and friends):
 14. non-UTF-8 bytes  15. a truncated last line  16. a missing label column
 17. an unknown label / label id  18. an empty file  19. Windows line endings (handled)
Configs, rejected when `spacy train` resolves the config, naming the field
(tests/test_architectures.py::test_bad_settings_fail_at_startup_naming_the_field, and
::test_spacy_train_reports_bad_setting_without_traceback for the CLI):
 20. a wrong type (width = "wide")        21. width not divisible by n_heads
 22. max_length < window_stride           23. an unknown positional kind
 24. an unknown token attribute           25. rows not matching attrs
Training and saved models (here):
 26. SIGTERM during `spacy train`: the run stops between steps, model-last and model-best load
 27. SIGINT (Ctrl-C) during `spacy train`: the same
 28. encoder weights truncated (half-written): clear error (also tests/test_deploy.py)
 29. a model directory missing its weights file: clear error
 30. weights replaced by a malicious pickle: refused, nothing runs (tests/test_deploy.py)
 32. a weights file (tok2vec/model, ner/model) cut short, emptied, or replaced by another
     file, in an eager and a scripted pipeline: `spacy_encoder.load_pipeline` (what the CLI
     loads with) fails with one line naming the file and what was expected; plain
     spacy.load fails with spaCy's or our encoder's error, spaCy's classes unchanged
 33. `spacy-encoder raw-text` on a corrupt DocBin (cut short, emptied, another file): one
     line naming the file, exit code 1
Concurrency (here):
 31. several threads calling nlp() on one pipeline give the results of one thread
Memory stability: `spacy-encoder bench-memory` prints RSS over 50,000 short docs (a
benchmark, not a timed test).
"""
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy
import pytest
import spacy
import torch
from spacy.tokens import DocBin
from spacy.training import Example
from typer.testing import CliRunner

from spacy_encoder.cli import app
from spacy_encoder.deploy import script_pipeline
from spacy_encoder.weights import load_pipeline

from .conftest import REPO
from .test_training import NER_DATA, TEXTCAT_DATA, nlp_from_config, train

SMALL = dict(width=64, depth=2, n_heads=4, ff_width=128, max_length=64, window_stride=48)

HARD_TEXTS = {
    "empty": "",
    "whitespace": " \n\t  \n",
    "one-token": "Berlin",
    "punctuation": "!!! ... ?!?! ;;; --- ((( ))) '' \"\" ,,,",
    "control": "a\x00b\x07c\x1bd \x0b \x0c \x7f end",
    "zero-width": "zero\u200bwidth\u200djoin\ufeffbom \u200b \u2060",
    "emoji": "I 😍 Paris 🇫🇷 👩‍👩‍👧‍👦 🙂🙂🙂",
    "arabic": "ذهب الرئيس إلى القاهرة يوم الخميس .",
    "cjk": "東京で会議が開かれた。北京大学の学生も参加した。",
    "long-token": "x" * 10_000,
}


@pytest.fixture(scope="module")
def pipelines():
    ner = nlp_from_config("ner", **SMALL)
    train(ner, [Example.from_dict(ner.make_doc(t), {"entities": e}) for t, e in NER_DATA], 10)
    textcat = nlp_from_config("textcat", **SMALL)
    train(textcat, [Example.from_dict(textcat.make_doc(t), {"cats": c}) for t, c in TEXTCAT_DATA], 10)
    return {"ner": ner, "textcat": textcat}


def check_doc(doc, width=64):
    assert doc.tensor.shape == (len(doc), width)
    assert numpy.isfinite(doc.tensor).all()
    for value in doc.cats.values():
        assert numpy.isfinite(value) and 0.0 <= value <= 1.0


@pytest.mark.parametrize("pipeline", ["ner", "textcat"])
@pytest.mark.parametrize("case", list(HARD_TEXTS))
def test_hard_text(pipelines, pipeline, case):
    nlp = pipelines[pipeline]
    doc = nlp(HARD_TEXTS[case])
    check_doc(doc)
    if pipeline == "textcat":
        assert set(doc.cats) == {"POSITIVE", "NEGATIVE"}


@pytest.mark.parametrize("pipeline", ["ner", "textcat"])
def test_mixed_batch_equals_one_by_one(pipelines, pipeline):
    nlp = pipelines[pipeline]
    texts = list(HARD_TEXTS.values()) + [" ".join(["word"] * 700)]
    piped = list(nlp.pipe(texts, batch_size=4))
    for text, doc in zip(texts, piped):
        single = nlp(text)
        check_doc(doc)
        numpy.testing.assert_allclose(doc.tensor, single.tensor, atol=1e-5)
        assert [e.text for e in doc.ents] == [e.text for e in single.ents]
        if len(doc) == 0:
            # spaCy's textcat scores a batch with no tokens at all as zeros, but an empty
            # doc inside a batch as the pooled zero vector: spaCy's behaviour, not ours.
            continue
        for label in single.cats:
            assert abs(doc.cats[label] - single.cats[label]) < 1e-5


def test_hundred_thousand_token_doc(pipelines):
    nlp = pipelines["ner"]
    words = ("The European Commission said on Thursday it disagreed with German advice .".split() * 8400)[:100_000]
    doc = nlp(" ".join(words))
    assert len(doc) == 100_000
    check_doc(doc)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mixed_precision_gpu_empty_docs_no_nan():
    from thinc.api import require_gpu

    require_gpu(0)
    nlp = nlp_from_config("ner", mixed_precision=True, grad_scaler_config={"init_scale": 1024.0}, **SMALL)
    exs = [Example.from_dict(nlp.make_doc(t), {"entities": e}) for t, e in NER_DATA]
    exs += [Example.from_dict(nlp.make_doc(""), {"entities": []})]
    losses = train(nlp, exs, 5)
    assert all(numpy.isfinite(v) for v in losses.values())
    for doc in nlp.pipe(["", "Berlin", "   "]):
        assert numpy.isfinite(doc.tensor.get() if hasattr(doc.tensor, "get") else doc.tensor).all()


def _tiny_corpus(path, n_docs=40):
    nlp = spacy.blank("en")
    db = DocBin()
    for i in range(n_docs):
        text, ents = NER_DATA[i % len(NER_DATA)]
        db.add(Example.from_dict(nlp.make_doc(text), {"entities": ents}).reference)
    db.to_disk(path)
    return path


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_training_leaves_loadable_models(tmp_path, signum):
    corpus = _tiny_corpus(tmp_path / "train.spacy")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "spacy", "train", str(REPO / "configs" / "ner.cfg"),
         "--paths.train", str(corpus), "--paths.dev", str(corpus), "--output", str(out),
         "--training.max_steps", "100000", "--training.eval_frequency", "5",
         "--components.tok2vec.model.width", "32", "--components.tok2vec.model.depth", "1",
         "--components.tok2vec.model.ff_width", "64"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.time() + 120
        while not (out / "model-best" / "meta.json").exists():
            assert proc.poll() is None, proc.stdout.read()
            assert time.time() < deadline, "no model-best within 120 s"
            time.sleep(0.5)
        time.sleep(2)
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum, output
    assert "Traceback" not in output, output
    assert "stopping after this step" in output
    for name in ("model-last", "model-best"):
        nlp = spacy.load(out / name)
        check_doc(nlp("Angela Merkel visited Paris."), width=32)


def test_model_directory_missing_weights_fails_clearly(pipelines, tmp_path):
    # Not named "model": the message must name the missing file, not just echo the path.
    pipelines["ner"].to_disk(tmp_path / "pipeline")
    missing = tmp_path / "pipeline" / "tok2vec" / "model"
    missing.unlink()
    with pytest.raises(FileNotFoundError) as err:
        spacy.load(tmp_path / "pipeline")
    assert "No such file or directory" in str(err.value)
    assert str(missing) in str(err.value)


def test_threads_give_the_results_of_one_thread(pipelines):
    nlp = pipelines["ner"]
    texts = [t for t, _ in NER_DATA] * 10 + list(HARD_TEXTS.values())
    expected = [nlp(t).tensor for t in texts]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda t: nlp(t).tensor, texts))
    for a, b in zip(results, expected):
        numpy.testing.assert_allclose(a, b, atol=1e-5)


# --- Damaged pipelines and corpora ---------------------------------------------------

TINY = dict(width=32, depth=1, n_heads=2, ff_width=64, max_length=32, window_stride=24)


@pytest.fixture(scope="module")
def saved_pipelines(tmp_path_factory):
    """An eager pipeline (initialized, not trained: only its files matter here) and its
    scripted copy, as `spacy-encoder script` writes it."""
    root = tmp_path_factory.mktemp("damaged")
    nlp = nlp_from_config("ner", **TINY)
    nlp.initialize(lambda: [Example.from_dict(nlp.make_doc(t), {"entities": e}) for t, e in NER_DATA])
    nlp.to_disk(root / "eager")
    script_pipeline(root / "eager", root / "scripted")
    return {"eager": root / "eager", "scripted": root / "scripted"}


DAMAGE = {
    # name: (how the file is damaged, what the message says)
    "cut short": (lambda file, path: file.write_bytes(file.read_bytes()[: file.stat().st_size // 2]), "is cut short"),
    "emptied": (lambda file, path: file.write_bytes(b""), "is empty"),
    "replaced by meta.json": (lambda file, path: file.write_bytes((path / "meta.json").read_bytes()), "is not a model file"),
    "replaced by random bytes": (
        lambda file, path: file.write_bytes(numpy.random.default_rng(0).bytes(5000)), "is not a model file"
    ),
    "replaced by another component's model": (
        lambda file, path: file.write_bytes((path / "ner" / "model").read_bytes()), "holds the weights of another model"
    ),
}


def load_damaged(source, tmp_path, component, damage):
    path = tmp_path / "pipeline"
    shutil.copytree(source, path)
    file = path / component / "model"
    DAMAGE[damage][0](file, path)
    with pytest.raises(ValueError) as err:
        load_pipeline(path)
    return file, err.value


@pytest.mark.parametrize("kind", ["eager", "scripted"])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_weights_file_fails_naming_the_file(saved_pipelines, tmp_path, kind, damage):
    file, error = load_damaged(saved_pipelines[kind], tmp_path, "tok2vec", damage)
    message = str(error)
    assert str(file) in message
    assert DAMAGE[damage][1] in message
    assert "expected the weights of the pipeline's 'tok2vec' component" in message
    assert "\n" not in message
    # One error, not one raised while handling another (no "During handling..." trace).
    assert error.__cause__ is None and error.__context__ is None


@pytest.mark.parametrize("kind", ["eager", "scripted"])
def test_damaged_head_weights_fail_naming_the_file(saved_pipelines, tmp_path, kind):
    file, error = load_damaged(saved_pipelines[kind], tmp_path, "ner", "cut short")
    assert str(file) in str(error) and "is cut short" in str(error) and "'ner' component" in str(error)
    assert "\n" not in str(error)


def test_truncated_scripted_graph_fails_naming_the_file(saved_pipelines, tmp_path):
    # Cut short inside a valid thinc file: the TorchScript graph itself (the eager
    # case, the torch state_dict, is tests/test_deploy.py::test_truncated_weights_...).
    import srsly

    path = tmp_path / "pipeline"
    shutil.copytree(saved_pipelines["scripted"], path)
    file = path / "tok2vec" / "model"
    msg = srsly.msgpack_loads(file.read_bytes())
    for node_shims in msg["shims"]:
        for i, shim_bytes in enumerate(node_shims):
            shim = srsly.msgpack_loads(shim_bytes)
            shim["model"] = shim["model"][: len(shim["model"]) // 2]
            node_shims[i] = srsly.msgpack_dumps(shim)
    file.write_bytes(srsly.msgpack_dumps(msg))
    with pytest.raises(ValueError, match="the TorchScript encoder could not be loaded") as err:
        load_pipeline(path)
    assert str(file) in str(err.value) and "corrupted" in str(err.value)
    assert "\n" not in str(err.value)
    # Plain spacy.load: our deserializer's one line, without the path spaCy does not pass on.
    with pytest.raises(ValueError, match="the TorchScript encoder could not be loaded") as err:
        spacy.load(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_plain_spacy_load_of_a_damaged_file_still_fails(saved_pipelines, tmp_path, damage):
    # No wrapper of spaCy's classes: spacy.load raises its own (or thinc's, or our
    # encoder's) error, and a second load of the same files through load_pipeline
    # names the file.
    from spacy.language import Language

    path = tmp_path / "pipeline"
    shutil.copytree(saved_pipelines["eager"], path)
    DAMAGE[damage][0](path / "tok2vec" / "model", path)
    with pytest.raises((ValueError, TypeError, KeyError)):
        spacy.load(path)
    assert Language.from_disk.__qualname__ == "Language.from_disk"
    assert Language.from_disk.__module__ == "spacy.language"


def test_load_pipeline_leaves_other_errors_alone(saved_pipelines, tmp_path):
    path = tmp_path / "pipeline"
    shutil.copytree(saved_pipelines["eager"], path)
    (path / "tok2vec" / "model").unlink()
    with pytest.raises(FileNotFoundError):
        load_pipeline(path)
    with pytest.raises(OSError):
        load_pipeline(tmp_path / "no-such-pipeline")


@pytest.mark.parametrize(
    "damage, expected",
    [
        ("cut short", "is cut short"),
        ("emptied", "is empty"),
        ("replaced by random bytes", "not zlib-compressed msgpack"),
    ],
)
def test_raw_text_on_corrupt_docbin_names_the_file(tmp_path, damage, expected):
    corpus = _tiny_corpus(tmp_path / "train.spacy")
    DAMAGE[damage][0](corpus, tmp_path)
    result = CliRunner().invoke(app, ["convert", "raw-text", str(corpus), "-o", str(tmp_path / "raw.jsonl")])
    text = " ".join(result.output.split())  # wasabi wraps long lines
    assert result.exit_code == 1, text
    assert isinstance(result.exception, SystemExit), result.exception  # typer.Exit, not a crash
    assert "Traceback" not in text
    assert f"{corpus}: not a DocBin written by spaCy" in text
    assert expected in text
    assert not (tmp_path / "raw.jsonl").exists()
