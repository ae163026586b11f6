"""ONNX deployment: `spacy-encoder deploy onnx` pipelines (`spacy-encoder.OnnxTok2Vec.v1`)
and `deploy export --format onnx` files against eager, which stays the reference.

Every variant (v1, v2 with vectors, each kind of positions, depth 1 and 3) predicts as
eager within 1e-4 on the hard inputs (empty docs, long docs through windows, emoji,
control characters, vectors); the pipeline loads and predicts with torch blocked; it
saves and loads with stable bytes, pickles for `nlp.pipe(n_process=2)`, and refuses
`nlp.update` in one line. `--optimize int8` quantizes every MatMul with a weight and
keeps each token's vector; a layer's onnxruntime session lives and dies with it.
"""
import json
import pickle

import numpy
import pytest
import spacy
from spacy.training import Example

pytest.importorskip("onnxruntime", reason="onnxruntime is the `onnx` extra")
pytest.importorskip("onnxscript", reason="onnxscript (the `onnx` extra) is needed by torch.onnx.export")

from spacy_encoder.deploy import DeployError, script_pipeline  # noqa: E402
from spacy_encoder.onnx_export import export_onnx_file, onnx_pipeline  # noqa: E402

from .conftest import run_without_torch  # noqa: E402
from .test_hard_inputs import HARD_TEXTS  # noqa: E402
from .test_training import NER_DATA, TEXTCAT_DATA, nlp_from_config, train  # noqa: E402
from .test_vectors import LONG_TEXT, ner_examples, vectors_nlp  # noqa: E402

TINY = dict(width=32, depth=1, n_heads=2, ff_width=64, max_length=16, window_stride=12)
TEXTS = [
    *HARD_TEXTS.values(),
    LONG_TEXT,
    " ".join(["Berlin"] * 40),  # windows
    *[text for text, _ in NER_DATA],
]
VARIANTS = {
    "v1-rotary": ("ner", dict(positions="rotary")),
    "v1-sinusoidal-depth3": ("ner", dict(positions="sinusoidal", depth=3)),
    "v1-learned": ("ner", dict(positions="learned")),
    "v1-none-postnorm": ("ner", dict(positions="none", norm_first=False, local_window=0)),
    "v1-textcat": ("textcat", {}),
    "v2-vectors": ("ner_vectors", {}),
}


def build(variant: str, tmp_path):
    config, overrides = VARIANTS[variant]
    settings = {**TINY, **overrides}
    if config == "ner_vectors":
        nlp = vectors_nlp(**settings)
        exs = ner_examples(nlp)
    else:
        nlp = nlp_from_config(config, **settings)
        if config == "ner":
            exs = [Example.from_dict(nlp.make_doc(t), {"entities": e}) for t, e in NER_DATA]
        else:
            exs = [Example.from_dict(nlp.make_doc(t), {"cats": c}) for t, c in TEXTCAT_DATA]
    train(nlp, exs, 3)
    nlp.to_disk(tmp_path / "eager")
    onnx_pipeline(tmp_path / "eager", tmp_path / "onnx")
    return tmp_path / "eager", tmp_path / "onnx"


def outputs(nlp, texts):
    docs = list(nlp.pipe(texts, batch_size=8))
    return [d.tensor for d in docs], [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in docs], [d.cats for d in docs]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_onnx_pipeline_predicts_as_eager(variant, tmp_path):
    eager_path, onnx_path = build(variant, tmp_path)
    eager, onnx = spacy.load(eager_path), spacy.load(onnx_path)
    assert onnx.config["components"]["tok2vec"]["model"]["@architectures"] == "spacy-encoder.OnnxTok2Vec.v1"
    (expected, ents, cats), (got, onnx_ents, onnx_cats) = outputs(eager, TEXTS), outputs(onnx, TEXTS)
    for text, a, b in zip(TEXTS, expected, got):
        assert a.shape == b.shape, text[:40]
        numpy.testing.assert_allclose(b, a, atol=1e-4, err_msg=text[:40])
    assert onnx_ents == ents
    for a, b in zip(cats, onnx_cats):
        assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-4 for k in a)


@pytest.fixture(scope="module")
def ner_pair(tmp_path_factory):
    return build("v1-rotary", tmp_path_factory.mktemp("onnx"))


def test_onnx_pipeline_loads_and_predicts_without_torch(ner_pair, tmp_path):
    eager_path, onnx_path = ner_pair
    expected = spacy.load(eager_path)("EU rejects German call to boycott British lamb .").tensor
    numpy.save(tmp_path / "expected.npy", expected)
    code = (
        "import numpy, spacy\n"
        f"nlp = spacy.load({str(onnx_path)!r})\n"
        "doc = nlp('EU rejects German call to boycott British lamb .')\n"
        f"numpy.testing.assert_allclose(doc.tensor, numpy.load({str(tmp_path / 'expected.npy')!r}), atol=1e-4)\n"
        "print('predicted without torch')\n"
    )
    # `import torch` raises in that process: loading or predicting through torch fails it.
    assert run_without_torch(code, tmp_path).strip().splitlines()[-1] == "predicted without torch"


def test_onnx_pipeline_saves_and_loads_with_stable_bytes(ner_pair, tmp_path):
    _, onnx_path = ner_pair
    spacy.load(onnx_path).to_disk(tmp_path / "again")
    for name in ("tok2vec", "ner"):
        assert (tmp_path / "again" / name / "model").read_bytes() == (onnx_path / name / "model").read_bytes(), name


def test_onnx_pipeline_pickles_and_runs_in_two_processes(ner_pair):
    _, onnx_path = ner_pair
    nlp = spacy.load(onnx_path)
    texts = [t for t, _ in NER_DATA] * 4
    expected = [d.tensor for d in nlp.pipe(texts)]
    again = pickle.loads(pickle.dumps(nlp))
    for a, b in zip(expected, (d.tensor for d in again.pipe(texts))):
        numpy.testing.assert_allclose(b, a, atol=1e-6)
    for a, b in zip(expected, (d.tensor for d in nlp.pipe(texts, n_process=2, batch_size=4))):
        numpy.testing.assert_allclose(b, a, atol=1e-5)


def test_onnx_pipeline_refuses_training_in_one_line(ner_pair):
    _, onnx_path = ner_pair
    nlp = spacy.load(onnx_path)
    exs = [Example.from_dict(nlp.make_doc(t), {"entities": e}) for t, e in NER_DATA]
    with pytest.raises(ValueError, match="ONNX graph .* cannot be trained") as err:
        nlp.update(exs, sgd=nlp.resume_training())
    assert "\n" not in str(err.value)


def test_onnx_export_file_runs_on_onnxruntime_as_eager(ner_pair, tmp_path):
    import onnxruntime

    from spacy_encoder.layers import extract_features
    from spacy_encoder.nodes import TOK2VEC, pipeline_encoders, torch_module

    eager_path, _ = ner_pair
    description = export_onnx_file(eager_path, tmp_path / "encoder.onnx", component="tok2vec")
    assert json.loads((tmp_path / "encoder.onnx.json").read_text()) == description
    assert description["format"] == "onnx" and set(description["inputs"]) == {"ids", "lengths"}
    nlp = spacy.load(eager_path)
    (_, node), = pipeline_encoders(nlp, (TOK2VEC,))
    doc = nlp.make_doc("EU rejects German call to boycott British lamb .")
    ids = extract_features([doc], node.attrs["attr_ids"])[None]  # (1, n, F)
    lengths = numpy.array([len(doc)], dtype="int64")
    session = onnxruntime.InferenceSession(str(tmp_path / "encoder.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(["output"], {"ids": ids, "lengths": lengths})
    import torch

    with torch.no_grad():
        expected = torch_module(node).eval()(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
    numpy.testing.assert_allclose(got, expected, atol=1e-4)


def test_onnx_int8_quantizes_every_weight_matmul_and_stays_close_to_float(ner_pair, tmp_path):
    import onnx

    from spacy_encoder.nodes import ONNX_TOK2VEC, onnx_graph_layer, pipeline_encoders

    eager_path, float_path = ner_pair
    onnx_pipeline(eager_path, tmp_path / "int8", optimize="int8")
    nlp, float_nlp = spacy.load(tmp_path / "int8"), spacy.load(float_path)
    assert nlp.meta["spacy_encoder"]["inference"] == "onnx-int8"
    graphs = {}
    for name, pipeline in (("int8", nlp), ("float", float_nlp)):
        (node,) = [node for _, node in pipeline_encoders(pipeline, (ONNX_TOK2VEC,))]
        graphs[name] = onnx.load_from_string(onnx_graph_layer(node).attrs["graph"])
        # The opset is pinned, whatever torch's exporter defaults to, and the pipeline says so.
        assert [(o.domain, o.version) for o in graphs[name].opset_import if o.domain in ("", "ai.onnx")] == [("", 20)]
        assert pipeline.meta["spacy_encoder"]["onnx"] == {"opset": 20, "onnxruntime": "onnxruntime>=1.20"}
        assert "onnxruntime>=1.20" in pipeline.meta["requirements"]
    weights = {init.name for init in graphs["float"].graph.initializer}
    weight_matmuls = [n for n in graphs["float"].graph.node if n.op_type == "MatMul" and set(n.input) & weights]
    int8_ops = [n.op_type for n in graphs["int8"].graph.node]
    # the embeddings' mix, the local convolutions (unfolded), and each layer's four Linear layers
    assert len(weight_matmuls) == 1 + 2 + 4
    assert int8_ops.count("MatMulInteger") == len(weight_matmuls)
    for text in TEXTS:
        expected, got = float_nlp(text).tensor, nlp(text).tensor
        assert got.shape == expected.shape
        if len(expected):
            # int8 rounding, not another function: each token's vector keeps its direction
            cosine = (got * expected).sum(1) / (numpy.linalg.norm(got, axis=1) * numpy.linalg.norm(expected, axis=1))
            # Without AVX-512 VNNI (an AVX2-only AMD EPYC, family 25) onnxruntime's u8s8
            # kernels add pairs of products in 16 bits and round more: per-token minima of
            # 0.952-0.979 and means of 0.979-0.99 there over four runs, above 0.98 with VNNI.
            # Another function would not keep the direction of every token (cosine < 0.9).
            assert cosine.min() > 0.9 and cosine.mean() > 0.97, text[:40]
    exs = [Example.from_dict(nlp.make_doc(t), {"entities": e}) for t, e in NER_DATA]
    with pytest.raises(ValueError, match="ONNX graph .* cannot be trained"):
        nlp.update(exs, sgd=nlp.resume_training())


def test_deploy_onnx_refuses_what_it_cannot_convert(ner_pair, tmp_path):
    eager_path, onnx_path = ner_pair
    script_pipeline(eager_path, tmp_path / "scripted")
    with pytest.raises(DeployError, match="written by `spacy-encoder deploy script`.*pipeline it was made from"):
        onnx_pipeline(tmp_path / "scripted", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(DeployError, match="no spacy-encoder architecture"):
        onnx_pipeline(onnx_path, tmp_path / "out2")


def test_deploy_onnx_command(ner_pair, tmp_path):
    from typer.testing import CliRunner

    from spacy_encoder.cli import app

    eager_path, _ = ner_pair
    result = CliRunner().invoke(app, ["deploy", "onnx", str(eager_path), str(tmp_path / "onnx")])
    assert result.exit_code == 0, result.output
    assert spacy.load(tmp_path / "onnx")("Berlin .").tensor.shape == (2, TINY["width"])
    result = CliRunner().invoke(app, ["deploy", "onnx", str(eager_path), str(tmp_path / "int8"), "--optimize", "int8"])
    assert result.exit_code == 0, result.output
    assert "--optimize int8" in result.output
    assert spacy.load(tmp_path / "int8").meta["spacy_encoder"]["inference"] == "onnx-int8"
    result = CliRunner().invoke(app, ["deploy", "onnx", str(eager_path), str(tmp_path / "x"), "--optimize", "freeze"])
    assert result.exit_code == 2 and "freeze" in result.output
    result = CliRunner().invoke(app, ["deploy", "export", str(eager_path), str(tmp_path / "e.onnx"), "--format", "onnx"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "e.onnx").stat().st_size > 0 and (tmp_path / "e.onnx.json").exists()


@pytest.mark.parametrize("command", ["onnx", "script"])
def test_deploy_commands_name_a_damaged_pipeline_in_one_line(ner_pair, tmp_path, command):
    import shutil

    from typer.testing import CliRunner

    from spacy_encoder.cli import app

    eager_path, _ = ner_pair
    damaged = tmp_path / "damaged"
    shutil.copytree(eager_path, damaged)
    model_file = damaged / "tok2vec" / "model"
    model_file.write_bytes(model_file.read_bytes()[:1000])
    result = CliRunner().invoke(app, ["deploy", command, str(damaged), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and str(model_file) in result.output
    assert not (tmp_path / "out").exists()


def test_the_bench_onnx_row_builds_an_onnx_pipeline_and_times_single_requests():
    from spacy_encoder import bench

    texts = [text for text, _ in NER_DATA]
    result = bench.measure_latency("ner-ours-onnx", texts)
    assert result["median_ms"] > 0 and result["wps"] > 0
    nlp = bench.build_pipeline("ner-ours-onnx")
    assert nlp.config["components"]["tok2vec"]["model"]["@architectures"] == "spacy-encoder.OnnxTok2Vec.v1"


def test_an_onnx_session_lives_and_dies_with_its_layer(ner_pair):
    import gc
    import weakref

    from spacy_encoder.nodes import ONNX_TOK2VEC, onnx_graph_layer, pipeline_encoders

    _, onnx_path = ner_pair
    nlp = spacy.load(onnx_path)
    expected = nlp("EU rejects German call .").tensor
    ((_, node),) = pipeline_encoders(nlp, (ONNX_TOK2VEC,))
    runtime = onnx_graph_layer(node)._func.args[0]
    graph = onnx_graph_layer(node).attrs["graph"]
    session = runtime.session(graph)
    assert runtime.session(graph) is session  # made once
    # a copy (spaCy's replace_listeners) shares the forward function, and predicts the same
    copied = node.copy()
    numpy.testing.assert_allclose(copied.predict([nlp.make_doc("EU rejects German call .")])[0], expected, atol=1e-6)
    ref = weakref.ref(session)
    del nlp, node, copied, runtime, graph, session
    gc.collect()
    assert ref() is None, "the session outlived its pipeline"


def _worker_session_threads(_=None):
    import onnxruntime

    from spacy_encoder.onnx_layer import intra_op_threads, session_options

    return intra_op_threads(), session_options(onnxruntime).intra_op_num_threads


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_sessions_in_worker_processes_run_one_thread_whatever_the_start_method(method, monkeypatch):
    import multiprocessing

    pytest.importorskip("onnxruntime")
    monkeypatch.delenv("SPACY_ENCODER_ORT_THREADS", raising=False)
    assert _worker_session_threads()[0] == 0  # this process: onnxruntime's default
    with multiprocessing.get_context(method).Pool(1) as pool:
        assert pool.apply(_worker_session_threads) == (1, 1)


def test_small_inputs_run_on_a_one_thread_session_of_the_same_graph(ner_pair, monkeypatch):
    """A sentence runs on a second session with one intra-op thread (waking a pool costs
    more than the work); a large input on the main one; the outputs are the same graph's.
    Off with SPACY_ENCODER_SMALL_INPUT_TOKENS=0, and not needed where the main session
    runs one thread (SPACY_ENCODER_ORT_THREADS=1, worker processes)."""
    from spacy_encoder.nodes import ONNX_TOK2VEC, onnx_graph_layer, pipeline_encoders

    _, onnx_path = ner_pair
    short = "EU rejects German call to boycott British lamb ."
    long_text = " ".join([short] * 40)  # 400 tokens: above 256 padded positions

    def sessions(env):
        for name in ("SPACY_ENCODER_ORT_THREADS", "SPACY_ENCODER_SMALL_INPUT_TOKENS"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        nlp = spacy.load(onnx_path)
        ((_, node),) = pipeline_encoders(nlp, (ONNX_TOK2VEC,))
        runtime = onnx_graph_layer(node)._func.args[0]
        tensors = nlp(short).tensor, nlp(long_text).tensor
        distinct = {id(session): session for _, session in runtime._sessions.values()}.values()
        threads = sorted(session.get_session_options().intra_op_num_threads for session in distinct)
        return threads, tensors

    threads, (short_on, long_on) = sessions({"SPACY_ENCODER_ORT_THREADS": "2"})
    assert threads == [1, 2]
    threads, (short_off, long_off) = sessions({"SPACY_ENCODER_ORT_THREADS": "2", "SPACY_ENCODER_SMALL_INPUT_TOKENS": "0"})
    assert threads == [2]
    numpy.testing.assert_allclose(short_on, short_off, atol=1e-5)
    numpy.testing.assert_allclose(long_on, long_off, atol=1e-5)
    threads, _ = sessions({"SPACY_ENCODER_ORT_THREADS": "1"})
    assert threads == [1]


def test_session_threads_and_spinning_follow_the_environment(monkeypatch):
    onnxruntime = pytest.importorskip("onnxruntime")
    from spacy_encoder.onnx_layer import session_options

    monkeypatch.setenv("SPACY_ENCODER_ORT_THREADS", "3")
    monkeypatch.setenv("SPACY_ENCODER_ORT_SPINNING", "0")
    options = session_options(onnxruntime)
    assert options.intra_op_num_threads == 3 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    monkeypatch.setenv("SPACY_ENCODER_ORT_SPINNING", "1")
    with pytest.raises(RuntimeError, match="does not have"):  # onnxruntime's default: spin
        session_options(onnxruntime).get_session_config_entry("session.intra_op.allow_spinning")
    for name, value in (("SPACY_ENCODER_ORT_THREADS", "two"), ("SPACY_ENCODER_ORT_SPINNING", "2")):
        monkeypatch.setenv(name, value)
        with pytest.raises(ValueError) as info:
            session_options(onnxruntime)
        assert name in str(info.value) and "\n" not in str(info.value)
        monkeypatch.delenv(name)


def damaged_copy(onnx_path, tmp_path, damage):
    """A copy of the ONNX pipeline at `onnx_path` whose graph bytes went through `damage`."""
    import shutil

    import srsly

    target = tmp_path / "damaged"
    shutil.copytree(onnx_path, target)
    model_file = target / "tok2vec" / "model"
    msg = srsly.msgpack_loads(model_file.read_bytes())
    for attrs in msg["attrs"]:
        if "graph" in attrs:
            attrs["graph"] = srsly.msgpack_dumps(damage(srsly.msgpack_loads(attrs["graph"])))
    model_file.write_bytes(srsly.msgpack_dumps(msg))
    return target


def test_a_damaged_graph_fails_at_load_in_one_line_naming_the_file(ner_pair, tmp_path):
    from spacy_encoder.weights import WeightsError, load_pipeline

    _, onnx_path = ner_pair
    damaged = damaged_copy(onnx_path, tmp_path, lambda graph: graph[: len(graph) // 2])
    with pytest.raises(WeightsError) as info:
        load_pipeline(damaged)
    message = str(info.value)
    assert "\n" not in message and str(damaged / "tok2vec" / "model") in message
    assert "does not load in onnxruntime" in message and "deploy onnx" in message
    with pytest.raises(WeightsError, match="does not load in onnxruntime"):
        spacy.load(damaged)  # at load, not at the first doc


def test_a_graph_of_another_width_fails_at_load(ner_pair):
    """A graph whose output is wider than the width the layer was saved with (a graph
    swapped in, or a config edited before the save) fails at load: reshaped by a width
    that divides its own, it would give garbage silently."""
    from spacy_encoder.nodes import onnx_graph_layer
    from spacy_encoder.onnx_layer import build_onnx_tok2vec_v1
    from spacy_encoder.weights import WeightsError

    _, onnx_path = ner_pair
    real = next(n for n in spacy.load(onnx_path).get_pipe("tok2vec").model.walk() if n.name == "onnx")
    width = real.get_dim("nO")

    def narrow():
        return onnx_graph_layer(build_onnx_tok2vec_v1(width=width // 2, attrs=["NORM"], max_length=16, window_stride=12))

    swapped = narrow()
    swapped.attrs["graph"] = real.attrs["graph"]
    with pytest.raises(WeightsError, match=f"output width {width}, but the config's width is {width // 2}"):
        narrow().from_bytes(swapped.to_bytes())


def test_without_onnxruntime_an_onnx_pipeline_fails_at_load_with_the_install_hint(ner_pair, tmp_path):
    _, onnx_path = ner_pair
    code = f"import spacy\nspacy.load({str(onnx_path)!r})\nprint('no error at load')\n"
    output = run_without_torch(code, tmp_path, blocked=("torch", "onnxruntime"), check=False)
    assert "no error at load" not in output
    assert 'runs on onnxruntime, which is not installed: pip install "spacy-encoder[onnx]"' in output


@pytest.mark.parametrize("form", ["onnx", "script-int8"])
def test_a_pipeline_trained_with_torchscript_converts_and_matches_eager(tmp_path, form):
    """`torchscript = true` trains a TorchScript module; its config rebuilds the eager
    module, which takes its weights, so `deploy onnx` and `deploy script --optimize`
    convert it."""
    nlp = nlp_from_config("ner", **TINY, torchscript=True)
    train(nlp, [Example.from_dict(nlp.make_doc(t), {"entities": e}) for t, e in NER_DATA], 3)
    nlp.to_disk(tmp_path / "trained")
    if form == "onnx":
        onnx_pipeline(tmp_path / "trained", tmp_path / form)
    else:
        script_pipeline(tmp_path / "trained", tmp_path / form, optimize="int8")
    trained, converted = spacy.load(tmp_path / "trained"), spacy.load(tmp_path / form)
    for a, b in zip(trained.pipe(TEXTS), converted.pipe(TEXTS)):
        if form == "onnx":
            numpy.testing.assert_allclose(b.tensor, a.tensor, atol=1e-4)
        elif len(a):
            cosine = (a.tensor * b.tensor).sum(1) / (numpy.linalg.norm(a.tensor, axis=1) * numpy.linalg.norm(b.tensor, axis=1) + 1e-12)
            assert cosine.min() > 0.9


def test_loading_a_graph_into_a_layer_that_ran_frees_its_old_session(ner_pair):
    import gc
    import weakref

    _, onnx_path = ner_pair
    nlp = spacy.load(onnx_path)
    nlp("Berlin .")
    layer = next(n for n in nlp.get_pipe("tok2vec").model.walk() if n.name == "onnx")
    runtime = layer._func.args[0]
    old_refs = [weakref.ref(session) for _, session in runtime._sessions.values()]
    assert old_refs
    layer.from_bytes(layer.to_bytes())
    gc.collect()
    assert all(ref() is None for ref in old_refs)  # not kept until evicted
    assert len(runtime._sessions) == 1  # the new graph's, made at load
    numpy.testing.assert_allclose(nlp("Berlin .").tensor, spacy.load(onnx_path)("Berlin .").tensor, atol=1e-6)


def test_an_onnx_export_file_with_static_vectors_runs_as_eager(tmp_path):
    import onnxruntime

    from spacy_encoder.layers import extract_features, static_vectors
    from spacy_encoder.nodes import TOK2VEC, pipeline_encoders, torch_module

    eager_path, _ = build("v2-vectors", tmp_path)
    description = export_onnx_file(eager_path, tmp_path / "encoder.onnx", component="tok2vec")
    assert set(description["inputs"]) == {"ids", "vectors", "lengths"}
    nlp = spacy.load(eager_path)
    (_, node), = pipeline_encoders(nlp, (TOK2VEC,))
    doc = nlp.make_doc(NER_DATA[1][0])  # within max_length: one window, as the file runs
    ids = extract_features([doc], node.attrs["attr_ids"])[None]  # (1, n, F)
    vectors = numpy.asarray(static_vectors(node, [doc]))[None]  # (1, n, V)
    assert numpy.abs(vectors).sum() > 0  # some words have vectors
    lengths = numpy.array([len(doc)], dtype="int64")
    session = onnxruntime.InferenceSession(str(tmp_path / "encoder.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(["output"], {"ids": ids, "vectors": vectors, "lengths": lengths})
    import torch

    with torch.no_grad():
        module = torch_module(node).eval()
        expected = module(torch.from_numpy(ids), torch.from_numpy(vectors), torch.from_numpy(lengths)).numpy()
    numpy.testing.assert_allclose(got, expected, atol=1e-4)
