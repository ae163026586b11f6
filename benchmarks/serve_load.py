"""Load on the reference service (`spacy-encoder deploy serve`), micro-batching on and
off: requests/s, p50/p99 latency, errors and the server's resident memory over time.

    python benchmarks/serve_load.py                                       # 20,000 requests, 8 clients
    python benchmarks/serve_load.py --requests 200 --clients 2 --soak 10  # a smoke run
    python benchmarks/serve_load.py training/ner/model-best --data corpus/conll2003/test.spacy --soak 600
    python benchmarks/serve_load.py --bench-pipeline ner-ours-onnx-int8 --texts-per-request 4

For each mode the service starts in a subprocess on a free port of 127.0.0.1 (`deploy
serve MODEL --batch-window-ms W`, W = 0 for "off"), and N client threads, each with one
keep-alive connection, send `{"texts": [...]}` requests of sentences from DATA until
REQUESTS are answered; then, with `--soak S`, for S seconds more. The server's VmRSS
(/proc/PID/status) is sampled every `--sample-every` seconds from the moment it answers
/health. MODEL defaults to an untrained pipeline of `spacy-encoder bench` (configs/ner.cfg's
settings; a trained one costs the same), written to a temporary folder. DATA is a
`.spacy` file (its sentences, or its docs where no sentence is set), a CoNLL column file
(a name with "conll", or `-DOCSTART-` lines) or a text file of one text per line; the
default is the WikiGold corpus shipped in corpus/.

The clients run in this process and take CPU from the server: on a small machine the
figures are a floor, and on a machine that is doing other work they only show that
the service runs. It prints the load average before and after.
"""
from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from statistics import median
from typing import Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]
WIKIGOLD = REPO / "corpus" / "wikigold" / "wikigold.conll.txt"


def read_texts(path: Path) -> List[str]:
    """The sentences (or texts) of DATA, in order, empty ones left out."""
    if path.suffix == ".spacy":
        import spacy
        from spacy.tokens import DocBin

        docs = DocBin().from_disk(path).get_docs(spacy.blank("en").vocab)
        texts = [s.text for doc in docs for s in (doc.sents if doc.has_annotation("SENT_START") else [doc])]
    elif "conll" in path.name.lower() or "-DOCSTART-" in path.read_text(encoding="utf8")[:10_000]:
        from spacy_encoder.bench import column_texts

        texts = column_texts(path, 1)
    else:
        texts = path.read_text(encoding="utf8").splitlines()
    texts = [t.strip() for t in texts if t.strip()]
    if not texts:
        raise SystemExit(f"{path}: no text found")
    return texts


def default_pipeline(name: str, folder: Path) -> Path:
    """An untrained `spacy-encoder bench` pipeline (`ner-ours`, `ner-ours-int8`, ...)
    written to `folder`."""
    from spacy_encoder.bench import build_pipeline

    build_pipeline(name).to_disk(folder / name)
    return folder / name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RssSampler(threading.Thread):
    """VmRSS of one process (MB) every `every` seconds: (seconds since start, MB)."""

    def __init__(self, pid: int, every: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: List[Tuple[float, float]] = []
        self.stopped = threading.Event()
        self.start_time = time.monotonic()

    def rss_mb(self) -> Optional[float]:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def run(self) -> None:
        while not self.stopped.is_set():
            mb = self.rss_mb()
            if mb is not None:
                self.samples.append((time.monotonic() - self.start_time, mb))
            self.stopped.wait(self.every)

    def now(self) -> float:
        return time.monotonic() - self.start_time

    def between(self, start: float, end: float) -> List[float]:
        return [mb for t, mb in self.samples if start <= t <= end]


def request(connection: http.client.HTTPConnection, body: bytes) -> Tuple[int, bytes]:
    connection.request("POST", "/annotate", body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, response.read()


def drive(port: int, texts: List[str], clients: int, per_request: int, n_requests: Optional[int], seconds: Optional[float]) -> Dict:
    """N clients send requests until n_requests are done (or `seconds` have passed):
    latencies (s) of the answered requests, errors, wall time."""
    counter = itertools.count()
    lock = threading.Lock()
    latencies: List[float] = []
    errors: List[str] = []
    deadline = time.monotonic() + seconds if seconds else None

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine: List[float] = []
        while True:
            with lock:
                i = next(counter)
            if (n_requests is not None and i >= n_requests) or (deadline is not None and time.monotonic() >= deadline):
                break
            start = (i * per_request) % len(texts)
            body = json.dumps({"texts": [texts[(start + k) % len(texts)] for k in range(per_request)]}).encode()
            began = time.perf_counter()
            try:
                status, answer = request(connection, body)
                if status != 200 or len(json.loads(answer)["docs"]) != per_request:
                    errors.append(f"{status}: {answer[:200]!r}")
                    continue
            except (OSError, http.client.HTTPException, ValueError, KeyError) as err:
                errors.append(f"{type(err).__name__}: {err}")
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            mine.append(time.perf_counter() - began)
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"latencies": sorted(latencies), "errors": errors, "seconds": time.perf_counter() - began}


def percentile(values: List[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def summary(run: Dict) -> str:
    lat = run["latencies"]
    rate = len(lat) / run["seconds"] if run["seconds"] else 0.0
    return (f"{len(lat):,} requests in {run['seconds']:.1f} s: {rate:,.1f} requests/s, p50 {1000 * median(lat) if lat else float('nan'):.2f} ms, "
            f"p99 {1000 * percentile(lat, 0.99):.2f} ms, {len(run['errors'])} errors")


def health(port: int) -> Dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/health")
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def start_server(model: Path, window_ms: float, max_batch: int, log: Path) -> Tuple[subprocess.Popen, int]:
    port = free_port()
    command = [sys.executable, "-m", "spacy_encoder.cli", "deploy", "serve", str(model), "--port", str(port),
               "--batch-window-ms", str(window_ms), "--max-batch", str(max_batch)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    server = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 180
    while True:
        if server.poll() is not None:
            raise SystemExit(f"the service exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if health(port)["status"] == "ok":
                return server, port
        except (OSError, ValueError, KeyError):
            pass
        if time.monotonic() > deadline:
            server.kill()
            raise SystemExit(f"the service did not answer /health within 180 s:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def stop_server(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGINT)
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def rss_line(sampler: RssSampler, start: float, end: float, label: str, points: int = 12) -> str:
    values = [(t, mb) for t, mb in sampler.samples if start <= t <= end]
    if not values:
        return f"  server RSS ({label}): no sample"
    step = max(1, len(values) // points)
    shown = values[::step] + ([values[-1]] if (len(values) - 1) % step else [])
    series = ", ".join(f"{t - start:.1f}s {mb:.0f}" for t, mb in shown)
    mbs = [mb for _, mb in values]
    return (f"  server RSS MB ({label}): first {mbs[0]:.1f}, last {mbs[-1]:.1f}, max {max(mbs):.1f} "
            f"({len(mbs)} samples): {series}")


def run_mode(name: str, window_ms: float, args: argparse.Namespace, model: Path, texts: List[str], folder: Path) -> Dict:
    server, port = start_server(model, window_ms, args.max_batch, folder / f"server-{name}.log")
    sampler = RssSampler(server.pid, args.sample_every)
    sampler.start()
    try:
        print(f"\nmicro-batching {name} (--batch-window-ms {window_ms:g}, --max-batch {args.max_batch}), server pid {server.pid}", flush=True)
        drive(port, texts, args.clients, args.texts_per_request, args.warmup, None)
        before = health(port)["batching"]
        load_start = sampler.now()
        load = drive(port, texts, args.clients, args.texts_per_request, args.requests, None)
        load_end = sampler.now()
        after = health(port)["batching"]
        calls, n_texts = after["batches"] - before["batches"], after["texts"] - before["texts"]
        print(f"  load: {summary(load)}; {calls:,} nlp.pipe calls, {n_texts / max(calls, 1):.1f} texts each", flush=True)
        print(rss_line(sampler, load_start, load_end, "load"), flush=True)
        soak = None
        if args.soak:
            soak = drive(port, texts, args.clients, args.texts_per_request, None, args.soak)
            soak_end = sampler.now()
            print(f"  soak {args.soak:g} s: {summary(soak)}", flush=True)
            print(rss_line(sampler, load_end, soak_end, "soak"), flush=True)
        for what, run in (("load", load), ("soak", soak)):
            if run and run["errors"]:
                print(f"  first {what} errors: {run['errors'][:3]}")
        rss = sampler.between(0, sampler.now())
    finally:
        sampler.stopped.set()
        stop_server(server)
    return {"name": name, "load": load, "soak": soak, "calls": calls, "texts": n_texts, "rss": rss}


def table(results: List[Dict], soak: float) -> None:
    head = "| micro-batching | requests/s | p50 ms | p99 ms | errors | texts per nlp.pipe | RSS MB first / last / max |"
    if soak:
        head += f" soak {soak:g} s: requests/s | p99 ms | errors |"
    print("\n" + head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in results:
        lat, rss = r["load"]["latencies"], r["rss"]
        cells = [r["name"], f"{len(lat) / r['load']['seconds']:,.1f}", f"{1000 * median(lat):.2f}" if lat else "-",
                 f"{1000 * percentile(lat, 0.99):.2f}", str(len(r["load"]["errors"])), f"{r['texts'] / max(r['calls'], 1):.1f}",
                 f"{rss[0]:.0f} / {rss[-1]:.0f} / {max(rss):.0f}" if rss else "-"]
        if soak and r["soak"]:
            s = r["soak"]
            cells += [f"{len(s['latencies']) / s['seconds']:,.1f}", f"{1000 * percentile(s['latencies'], 0.99):.2f}", str(len(s["errors"]))]
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", type=Path, default=None, help="pipeline folder (default: an untrained --bench-pipeline)")
    parser.add_argument("--bench-pipeline", default="ner-ours", help="without MODEL: a pipeline of spacy-encoder bench (ner-ours, ner-ours-int8, ner-ours-onnx-int8, ...)")
    parser.add_argument("--data", type=Path, default=WIKIGOLD, help=".spacy, CoNLL column or one-text-a-line file (default: WikiGold in corpus/)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=20_000, help="requests per mode")
    parser.add_argument("--soak", type=float, default=0.0, help="then S seconds more of the same load (0: none)")
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=50, help="requests before the measurement")
    parser.add_argument("--modes", default="on,off", help="on (micro-batching), off (--batch-window-ms 0), or both")
    parser.add_argument("--window-ms", type=float, default=5.0, help="--batch-window-ms of the 'on' mode")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--sample-every", type=float, default=0.5, help="seconds between RSS samples")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not set(modes) <= {"on", "off"} or not modes:
        parser.error(f"--modes takes on, off or on,off, not {args.modes!r}")

    texts = read_texts(args.data)
    print(f"{args.data}: {len(texts):,} texts; {args.clients} clients, {args.requests:,} requests of {args.texts_per_request} "
          f"text(s) per mode, soak {args.soak:g} s; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = args.model or default_pipeline(args.bench_pipeline, folder)
        print(f"pipeline: {model if args.model else f'{args.bench_pipeline} (untrained, spacy-encoder bench)'}", flush=True)
        results = [run_mode(mode, args.window_ms if mode == "on" else 0.0, args, model, texts, folder) for mode in modes]
    table(results, args.soak)
    print(f"\nload average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
