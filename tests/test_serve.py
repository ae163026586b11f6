"""The reference service (`spacy_encoder.serve`, `spacy-encoder deploy serve`): it
answers `text` and `texts`, refuses bad bodies with a 4xx and a one-line JSON message,
runs concurrent requests through one `nlp.pipe` call with each request's own answers,
and outlives clients that leave mid-request.

The HTTP tests run uvicorn in a thread of this process on a free port. A gate component
holds the worker thread inside `nlp.pipe`, so requests queue behind it: batching is
asserted from the batcher's count of `nlp.pipe` calls, never from timing. Needs the
`serve` extra (Starlette, uvicorn); skipped without it.
"""
from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Tuple

import pytest

pytest.importorskip("starlette", reason='the reference service needs the `serve` extra: pip install "spacy-encoder[serve]"')
uvicorn = pytest.importorskip("uvicorn", reason='the reference service needs the `serve` extra: pip install "spacy-encoder[serve]"')

import spacy  # noqa: E402
from spacy.language import Language  # noqa: E402
from spacy.training import Example  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from spacy_encoder.serve import MicroBatcher, PipelineError, RequestError, ServiceStopping, Settings, doc_answer, parse_texts  # noqa: E402
from spacy_encoder.serve.app import app_from_env, create_app  # noqa: E402

from .conftest import REPO  # noqa: E402
from .test_training import NER_DATA, nlp_from_config  # noqa: E402

pytestmark = pytest.mark.timeout(60)

# The gate: while closed, the worker thread waits inside nlp.pipe (ENTERED tells the
# test it is there). A text holding BOOM makes the pipeline raise.
GATE = threading.Event()
ENTERED = threading.Event()


@Language.component("serve_test_gate")
def serve_test_gate(doc):
    ENTERED.set()
    assert GATE.wait(20), "the test never opened the gate"
    if "BOOM" in doc.text:
        raise ValueError("BOOM in the text")
    return doc


@pytest.fixture(autouse=True)
def _open_gate():
    GATE.set()
    ENTERED.clear()
    yield
    GATE.set()


def ruler_pipeline() -> Language:
    """A blank English pipeline that finds London and Paris (LOC), behind the gate."""
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "LOC", "pattern": "London"}, {"label": "LOC", "pattern": "Paris"}])
    nlp.add_pipe("serve_test_gate")
    return nlp


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.005)


# --- the body, checked --------------------------------------------------------------


def test_parse_texts_takes_text_or_texts():
    assert parse_texts(b'{"text": "a b"}', max_texts=2) == ["a b"]
    assert parse_texts(json.dumps({"texts": ["a", ""], "id": 7}).encode(), max_texts=2) == ["a", ""]


@pytest.mark.parametrize(
    "body,status,says",
    [
        (b"{not json", 400, "not JSON"),
        (b"", 400, "not JSON"),
        (b"\xff\xfe\xfa", 400, "not"),
        (b'["a"]', 422, "JSON array, not an object"),
        (b'{"txt": "a"}', 422, 'neither of "text" and "texts"'),
        (b'{"text": "a", "texts": ["b"]}', 422, 'both of "text" and "texts"'),
        (b'{"text": 3}', 422, '"text" is a JSON number'),
        (b'{"texts": "a"}', 422, '"texts" is a JSON string'),
        (b'{"texts": []}', 422, '"texts" is empty'),
        (b'{"texts": ["a", null]}', 422, '"texts"[1] is a JSON null'),
        (b'{"texts": ["a", "b", "c"]}', 422, "over the limit of 2"),
    ],
)
def test_parse_texts_refuses_bad_bodies_in_one_line(body, status, says):
    with pytest.raises(RequestError) as err:
        parse_texts(body, max_texts=2)
    assert err.value.status == status and says in err.value.message and "\n" not in err.value.message


# --- the batcher, on an event loop ----------------------------------------------------


def run_batcher(nlp: Language, body: Callable[[MicroBatcher], Any], **settings) -> Tuple[MicroBatcher, Any]:
    async def main():
        batcher = MicroBatcher(nlp, **settings)
        await batcher.start()
        try:
            return batcher, await body(batcher)
        finally:
            await batcher.stop()

    return asyncio.run(main())


def loc_starts(answers) -> list:
    return [[e["start_char"] for e in answer["ents"]] for answer in answers]


@pytest.mark.parametrize("window_ms,sizes", [(50.0, [6]), (0.0, [1, 2, 3])])
def test_batcher_joins_concurrent_requests_unless_the_window_is_zero(window_ms, sizes):
    requests = [["London"], ["a London", "b Paris"], ["cc London", "dd x", "eee Paris"]]

    async def body(batcher):
        return await asyncio.gather(*(batcher.annotate(texts) for texts in requests))

    batcher, answers = run_batcher(ruler_pipeline(), body, window_ms=window_ms)
    assert list(batcher.stats.sizes) == sizes
    assert [loc_starts(a) for a in answers] == [[[0]], [[2], [2]], [[3], [], [4]]]


def test_batcher_caps_a_batch_at_max_batch_texts():
    async def body(batcher):
        return await asyncio.gather(*(batcher.annotate([f"{' ' * i}London"]) for i in range(5)))

    batcher, answers = run_batcher(ruler_pipeline(), body, max_batch=2, window_ms=50.0)
    assert list(batcher.stats.sizes) == [2, 2, 1]
    assert [loc_starts(a) for a in answers] == [[[i]] for i in range(5)]


def test_batcher_drops_a_cancelled_request_and_answers_the_others():
    async def body(batcher):
        GATE.clear()
        first = asyncio.ensure_future(batcher.annotate(["London"]))
        assert await asyncio.to_thread(ENTERED.wait, 10)  # the worker is busy
        left = asyncio.ensure_future(batcher.annotate(["gone London"]))
        stays = asyncio.ensure_future(batcher.annotate(["x Paris"]))
        await asyncio.sleep(0)
        left.cancel()
        GATE.set()
        answers = await asyncio.gather(first, stays)
        return answers + [await batcher.annotate(["after London"])]

    batcher, answers = run_batcher(ruler_pipeline(), body, window_ms=5.0)
    assert [loc_starts(a) for a in answers] == [[[0]], [[2]], [[6]]]
    assert batcher.stats.cancelled == 1 and batcher.stats.dropped == 1
    assert list(batcher.stats.sizes) == [1, 1, 1]


def test_batcher_fails_only_the_request_whose_text_breaks_the_pipeline():
    async def body(batcher):
        return await asyncio.gather(batcher.annotate(["London"]), batcher.annotate(["BOOM"]), batcher.annotate(["Paris"]),
                                    return_exceptions=True)

    batcher, (good, bad, also_good) = run_batcher(ruler_pipeline(), body, window_ms=50.0)
    assert loc_starts(good) == [[0]] and loc_starts(also_good) == [[0]]
    assert isinstance(bad, PipelineError) and "ValueError: BOOM in the text" in str(bad)
    assert batcher.stats.failed == 1


def test_stopping_the_batcher_fails_the_requests_it_has_not_answered():
    async def main():
        batcher = MicroBatcher(ruler_pipeline(), window_ms=5.0)
        await batcher.start()
        GATE.clear()
        running = asyncio.ensure_future(batcher.annotate(["London"]))
        assert await asyncio.to_thread(ENTERED.wait, 10)
        queued = asyncio.ensure_future(batcher.annotate(["Paris"]))
        await asyncio.sleep(0)
        await batcher.stop()
        GATE.set()
        results = await asyncio.gather(running, queued, return_exceptions=True)
        with pytest.raises(ServiceStopping):
            await batcher.annotate(["London"])
        return results

    assert [type(result) for result in asyncio.run(main())] == [ServiceStopping, ServiceStopping]


def test_batcher_settings_are_checked():
    with pytest.raises(ValueError, match="max_batch must be at least 1"):
        MicroBatcher(spacy.blank("en"), max_batch=0)
    with pytest.raises(ValueError, match="window_ms must be 0"):
        MicroBatcher(spacy.blank("en"), window_ms=-1)
    with pytest.raises(ValueError, match="SPACY_ENCODER_MAX_TEXTS='many' is not an integer"):
        Settings.from_env({"SPACY_ENCODER_MAX_TEXTS": "many"})
    assert Settings.from_env({"SPACY_ENCODER_BATCH_WINDOW_MS": "0", "SPACY_ENCODER_MAX_BATCH": "8"}) == Settings(max_batch=8, batch_window_ms=0.0)


# --- the service, over HTTP -------------------------------------------------------------


@contextmanager
def serving(app) -> Iterator[int]:
    """uvicorn serving `app` in a thread, on a free port of 127.0.0.1 (yielded)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, "uvicorn started")
        yield sock.getsockname()[1]
    finally:
        GATE.set()
        server.should_exit = True
        thread.join(10)
        sock.close()


def post(port: int, body: Any, path: str = "/annotate", method: str = "POST", **kwargs) -> Tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        data = body if isinstance(body, (bytes, type(None))) or hasattr(body, "__next__") else json.dumps(body).encode()
        connection.request(method, path, body=data, **kwargs)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


SETTINGS = Settings(max_batch=64, batch_window_ms=5.0, max_body_bytes=2000, max_texts=4)


@pytest.fixture(scope="module")
def service() -> Iterator[Tuple[int, MicroBatcher]]:
    app = create_app(ruler_pipeline(), SETTINGS)
    with serving(app) as port:
        yield port, app.state.batcher


def test_the_service_answers_text_and_texts(service):
    port, _ = service
    assert post(port, {"text": "I like London."}) == (200, {"docs": [{"ents": [{"text": "London", "label": "LOC", "start_char": 7, "end_char": 13}], "cats": {}}]})
    status, answer = post(port, {"texts": ["Paris", "", "nothing"]})
    assert status == 200 and loc_starts(answer["docs"]) == [[0], [], []]
    status, health = post(port, None, path="/health", method="GET")
    assert status == 200 and health["status"] == "ok" and health["components"] == ["entity_ruler", "serve_test_gate"]
    assert health["name"] == "en_pipeline" and health["limits"] == {"max_body_bytes": 2000, "max_texts": 4}


@pytest.mark.parametrize(
    "body,status,says",
    [
        (b"{oops", 400, "the body is not JSON"),
        (b'"London"', 422, "not an object"),
        (b'{"text": ["London"]}', 422, '"text" is a JSON array'),
        (b'{"texts": []}', 422, '"texts" is empty'),
        (b'{"texts": ["a", "b", "c", "d", "e"]}', 422, "over the limit of 4 (--max-texts)"),
        (b'{"text": "' + b"x" * 3000 + b'"}', 413, "the body is 3,012 bytes, over the limit of 2,000 (--max-body-bytes)"),
        (iter([b'{"text": "', b"x" * 1500, b"x" * 1500, b'"}']), 413, "over the limit of 2,000 bytes"),  # chunked: no length
    ],
    ids=["bad-json", "not-an-object", "wrong-type", "empty-texts", "too-many-texts", "too-large", "too-large-chunked"],
)
def test_the_service_refuses_bad_requests_with_a_one_line_json_error(service, body, status, says):
    port, _ = service
    got, answer = post(port, body)
    assert got == status and says in answer["error"] and list(answer) == ["error"]


def test_a_request_that_breaks_the_pipeline_gets_500_and_the_service_goes_on(service):
    port, _ = service
    status, answer = post(port, {"texts": ["London", "BOOM"]})
    assert status == 500 and answer == {"error": "the pipeline failed on this request: ValueError: BOOM in the text"}
    assert post(port, {"text": "London"})[0] == 200


def test_unknown_routes_and_methods_answer_json(service):
    port, _ = service
    assert post(port, None, path="/nothing", method="GET") == (404, {"error": "Not Found: the service answers GET /health and POST /annotate"})
    assert post(port, None, path="/annotate", method="GET")[0] == 405


def test_concurrent_requests_share_one_pipe_call_and_each_gets_its_own_answer(service):
    port, batcher = service
    texts = [f"{'x' * i} {'London' if i % 2 else 'Paris'}" for i in range(1, 7)]
    GATE.clear()
    with ThreadPoolExecutor(len(texts) + 1) as pool:
        first = pool.submit(post, port, {"text": "London"})
        assert ENTERED.wait(10)  # the worker thread is inside nlp.pipe with the first request
        calls = batcher.stats.batches
        rest = [pool.submit(post, port, {"text": text}) for text in texts]
        wait_until(lambda: batcher.waiting == len(texts), "every request is queued")
        GATE.set()
        answers = [future.result() for future in rest]
        assert first.result()[0] == 200
    assert batcher.stats.batches == calls + 2 and list(batcher.stats.sizes)[-1] == len(texts)
    for i, (status, answer) in enumerate(answers, 1):
        assert status == 200
        assert answer["docs"][0]["ents"] == [{"text": texts[i - 1].split()[1], "label": "LOC", "start_char": i + 1, "end_char": len(texts[i - 1])}]


def test_without_the_window_each_request_has_its_own_pipe_call():
    app = create_app(ruler_pipeline(), Settings(batch_window_ms=0))
    batcher = app.state.batcher
    with serving(app) as port, ThreadPoolExecutor(4) as pool:
        GATE.clear()
        first = pool.submit(post, port, {"text": "London"})
        assert ENTERED.wait(10)
        rest = [pool.submit(post, port, {"texts": ["Paris"] * (i + 1)}) for i in range(3)]
        wait_until(lambda: batcher.waiting == 3, "every request is queued")
        GATE.set()
        assert [future.result()[0] for future in [first, *rest]] == [200] * 4
    assert sorted(batcher.stats.sizes) == [1, 1, 2, 3] and batcher.stats.batches == 4


def raw_request(body: bytes, length: int) -> bytes:
    head = f"POST /annotate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    return head.encode() + body


@pytest.mark.parametrize("when", ["queued", "running"])
def test_a_client_that_leaves_mid_request_leaves_the_service_answering(service, when):
    """The client sends its request and closes the connection while its texts wait for
    the busy worker (dropped from their batch) or run (the answer is thrown away)."""
    port, batcher = service
    stats = batcher.stats
    cancelled, dropped = stats.cancelled, stats.dropped
    body = json.dumps({"text": "gone London"}).encode()
    GATE.clear()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(post, port, {"text": "London"}) if when == "queued" else None
        client = socket.create_connection(("127.0.0.1", port))
        if first is not None:
            assert ENTERED.wait(10)
        client.sendall(raw_request(body, len(body)))
        if first is None:
            assert ENTERED.wait(10)  # its own batch is running
        else:
            wait_until(lambda: batcher.waiting == 1, "the request is queued")
        client.close()
        wait_until(lambda: stats.cancelled == cancelled + 1, "the service saw the client leave")
        GATE.set()
        assert first is None or first.result()[0] == 200
        after = [pool.submit(post, port, {"text": f"{' ' * i}Paris"}) for i in range(2)]
        assert [f.result() for f in after] == [(200, {"docs": [{"ents": [{"text": "Paris", "label": "LOC", "start_char": i, "end_char": i + 5}], "cats": {}}]}) for i in range(2)]
    assert stats.dropped == dropped + (when == "queued")


def test_a_client_that_leaves_while_sending_its_body_leaves_the_service_answering(service):
    port, _ = service
    client = socket.create_connection(("127.0.0.1", port))
    client.sendall(raw_request(b'{"text": "Lon', 40))
    client.close()
    assert post(port, {"text": "London"})[0] == 200


# --- a spacy-encoder pipeline, from the environment -------------------------------------

TINY = dict(width=32, depth=1, n_heads=2, ff_width=64, max_length=32, window_stride=24)


@pytest.fixture(scope="module")
def encoder_pipeline(tmp_path_factory):
    """A tiny spacy-encoder NER + textcat pipeline, trained a little, saved."""
    nlp = nlp_from_config("ner", **TINY)
    nlp.add_pipe("textcat")
    cats = [{"POS": 1.0, "NEG": 0.0}, {"POS": 0.0, "NEG": 1.0}]
    examples = [Example.from_dict(nlp.make_doc(t), {"entities": e, "cats": cats[i % 2]}) for i, (t, e) in enumerate(NER_DATA)]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(40):  # 30 steps find 2 entities in the texts below, 40 steps 9
        nlp.update(examples, sgd=optimizer)
    path = tmp_path_factory.mktemp("serve") / "ner_textcat"
    nlp.to_disk(path)
    return path


def test_a_spacy_encoder_pipeline_served_from_the_environment_answers_as_nlp_pipe(encoder_pipeline, monkeypatch):
    monkeypatch.setenv("SPACY_ENCODER_PIPELINE", str(encoder_pipeline))
    monkeypatch.setenv("SPACY_ENCODER_MAX_TEXTS", "8")
    texts = [text for text, _ in NER_DATA] + ["Tim Cook visited London and Berlin."]
    expected = [doc_answer(doc) for doc in spacy.load(encoder_pipeline).pipe(texts)]
    app = app_from_env()
    assert app.state.settings.max_texts == 8
    with serving(app) as port:
        status, answer = post(port, {"texts": texts})
        status_one, one = post(port, {"text": texts[0]})
        _, health = post(port, None, path="/health", method="GET")
    assert status == 200 and status_one == 200 and health["components"] == ["tok2vec", "ner", "textcat"]
    assert [doc["ents"] for doc in answer["docs"]] == [doc["ents"] for doc in expected]
    assert any(doc["ents"] for doc in expected), "the tiny pipeline should find some entity"
    for got, want in zip(answer["docs"] + one["docs"], expected + expected[:1]):
        assert got["cats"].keys() == {"POS", "NEG"} and got["cats"] == pytest.approx(want["cats"], abs=1e-5)


def test_app_from_env_without_a_pipeline_says_which_variable(monkeypatch):
    monkeypatch.delenv("SPACY_ENCODER_PIPELINE", raising=False)
    with pytest.raises(RuntimeError, match="SPACY_ENCODER_PIPELINE is not set"):
        app_from_env()


# --- the command ------------------------------------------------------------------------


def serve_command():
    import typer.main

    from spacy_encoder.cli import app

    return typer.main.get_command(app).commands["deploy"].commands["serve"]


def test_the_command_defaults_are_the_library_defaults():
    defaults = {param.name: param.default for param in serve_command().params}
    assert {name: defaults[name] for name in ("max_batch", "batch_window_ms", "max_body_bytes", "max_texts")} == Settings().__dict__


def test_the_command_without_the_extra_fails_in_one_line_with_the_install_hint(monkeypatch):
    from spacy_encoder.cli import app

    monkeypatch.setitem(sys.modules, "uvicorn", None)
    result = CliRunner().invoke(app, ["deploy", "serve", "no-such-pipeline"], terminal_width=200)
    assert result.exit_code == 1 and "Traceback" not in result.output and result.output.count("✘") == 1
    assert 'pip install "spacy-encoder[serve]"' in " ".join(result.output.split())  # wasabi wraps at 80 columns


def test_the_command_with_a_missing_pipeline_fails_in_one_line(tmp_path):
    from spacy_encoder.cli import app

    result = CliRunner().invoke(app, ["deploy", "serve", str(tmp_path / "no-such-thing")], terminal_width=400)
    assert result.exit_code == 1 and "no-such-thing" in result.output and "Traceback" not in result.output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.timeout(120)
def test_the_command_serves_until_sigint(tmp_path):
    path = tmp_path / "ruler"
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "LOC", "pattern": "London"}])
    nlp.to_disk(path)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "spacy_encoder.cli", "deploy", "serve", str(path), "--port", str(port), "--batch-window-ms", "2"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        def up() -> bool:
            assert server.poll() is None, server.stdout.read()
            try:
                return post(port, None, path="/health", method="GET")[0] == 200
            except OSError:
                return False

        wait_until(up, "the command serves", timeout=90)
        assert post(port, {"text": "London"})[1]["docs"][0]["ents"][0]["label"] == "LOC"
    finally:
        server.send_signal(signal.SIGINT)
        output = server.communicate(timeout=30)[0]
    assert server.returncode == 0, output
    said = " ".join(output.split())
    assert f"on http://127.0.0.1:{port}: POST /annotate, GET /health; micro-batching up to 64 texts, 2 ms window" in said
