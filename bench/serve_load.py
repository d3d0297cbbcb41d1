"""Load test of `zoo serve` on 127.0.0.1: throughput, latency, errors, memory, and what
micro-batching gains over batch size 1.

For each export directory (any runtime) and each ``--max-batch-size`` setting (default: 64 and
1), starts ``python -m zoo.serving`` as its own process on a free loopback port, waits for
``/readyz``, sends ``--warmup`` requests, then ``--requests`` requests from ``--clients``
concurrent clients (asyncio, one keep-alive connection each, one text per request: real
sentences, Multi30k test sources by default), and prints one row per run: requests/s, p50 /
p99 latency, errors, server RSS (ready, after warm-up, after the load) and the throughput
gain of the batched server over batch size 1. Records go to bench/results/serve_load.jsonl.

Bounded and local: it connects only to the server it started on 127.0.0.1.

Example:
    zoo export --model runs/m30k --format onnx --out runs/m30k-onnx
    python bench/serve_load.py runs/m30k-onnx runs/m30k-savedmodel --requests 5000 --clients 64
"""

import argparse
import asyncio
import gzip
import json
import os
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from quality import append_record, hardware  # noqa: E402

DEFAULT_TEXTS = os.path.join(HERE, "..", "..", "shared", "data", "multi30k",
                             "test_2016_flickr.de.gz")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Connection:
    """One keep-alive HTTP/1.1 connection (asyncio streams; no client library overhead)."""

    def __init__(self, port):
        self.port, self.reader, self.writer = port, None, None

    async def post(self, path: str, body: bytes):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                          f"application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                          + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split()[1])
        length, close = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and "close" in value.lower():
                close = True
        data = await self.reader.readexactly(length)
        if close:
            self.writer.close()
            self.reader = self.writer = None
        return status, data


async def load(port, path, texts, n_requests, clients):
    """``n_requests`` requests from ``clients`` concurrent connections -> (latencies, errors,
    seconds)."""
    latencies, errors, counter = [], [], iter(range(n_requests))

    async def client():
        conn = Connection(port)
        for i in counter:
            body = json.dumps({"texts": [texts[i % len(texts)]]}).encode()
            start = time.perf_counter()
            try:
                status, data = await conn.post(path, body)
            except (OSError, ConnectionError, asyncio.IncompleteReadError) as err:
                errors.append(f"{type(err).__name__}: {err}")
                conn = Connection(port)
                continue
            latencies.append(time.perf_counter() - start)
            if status != 200:
                errors.append(f"{status}: {data[:120]!r}")
        if conn.writer:
            conn.writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, errors, time.perf_counter() - start


def wait_ready(proc, port, timeout=300):
    import http.client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError("the server was not ready in time")


def run(export_dir, max_batch, args, texts):
    port, name = free_port(), "m"
    cmd = [sys.executable, "-m", "zoo.serving", export_dir, "--name", name, "--port",
           str(port), "--max-batch-size", str(max_batch), "--batch-timeout-micros",
           str(args.batch_timeout_micros), "--max-queue", str(max(1024, args.clients * 4))]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_ready(proc, port)
        rss_ready = rss_mb(proc.pid)
        path = f"/v1/models/{name}:generate"
        asyncio.run(load(port, path, texts, args.warmup, args.clients))
        rss_warm = rss_mb(proc.pid)
        latencies, errors, seconds = asyncio.run(load(port, path, texts, args.requests,
                                                      args.clients))
        rss_after = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(60)
    with open(os.path.join(export_dir, "manifest.json")) as f:
        manifest = json.load(f)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    return {"bench": "serve_load", "runtime": manifest["format"],
            "preset": manifest.get("preset"), "export": os.path.abspath(export_dir),
            "max_batch_size": max_batch, "batch_timeout_micros": args.batch_timeout_micros,
            "clients": args.clients, "requests": args.requests, "errors": len(errors),
            "error_examples": errors[:3], "seconds": round(seconds, 2),
            "requests_per_s": round(args.requests / seconds, 1),
            "p50_ms": round(q[49] * 1000, 1), "p99_ms": round(q[98] * 1000, 1),
            "rss_ready_mb": round(rss_ready), "rss_warm_mb": round(rss_warm),
            "rss_after_mb": round(rss_after),
            "rss_growth_pct": round(100 * (rss_after - rss_warm) / rss_warm, 1),
            "hardware": hardware(), "date": time.strftime("%Y-%m-%d")}


def read_texts(path, limit):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        texts = [line.strip() for line in f if line.strip()]
    return texts[:limit]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("exports", nargs="+", help="export directories (zoo export)")
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 1],
                   help="--max-batch-size of each run (the first is compared with 1)")
    p.add_argument("--batch-timeout-micros", type=int, default=2000)
    p.add_argument("--texts", default=DEFAULT_TEXTS, help="one text per line (.gz allowed)")
    p.add_argument("--limit", type=int, default=1000, help="distinct texts used")
    p.add_argument("--results", default=os.path.join(HERE, "results", "serve_load.jsonl"))
    args = p.parse_args(argv)
    if not os.path.exists(args.texts):
        p.error(f"--texts {args.texts} not found (pass a file of sentences)")
    texts = read_texts(args.texts, args.limit)
    rows = []
    for export_dir in args.exports:
        for batch in args.batch_sizes:
            record = run(export_dir, batch, args, texts)
            append_record(args.results, record)
            rows.append(record)
            print(f"done: {record['runtime']} batch {batch}: {record['requests_per_s']} req/s",
                  file=sys.stderr, flush=True)
    print(f"\n`zoo serve` under load: {args.clients} clients, {args.requests} requests of one "
          f"text each, batch window {args.batch_timeout_micros} us; {rows[0]['hardware']}\n")
    print("| runtime | preset | max batch | req/s | p50 ms | p99 ms | errors | RSS ready / "
          "warm / after MB | growth | batching gain |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    base = {(r["export"]): r["requests_per_s"] for r in rows if r["max_batch_size"] == 1}
    for r in rows:
        gain = (f"{r['requests_per_s'] / base[r['export']]:.1f}x"
                if r["export"] in base and r["max_batch_size"] != 1 else "")
        print(f"| {r['runtime']} | {r['preset']} | {r['max_batch_size']} | "
              f"{r['requests_per_s']} | {r['p50_ms']} | {r['p99_ms']} | {r['errors']} | "
              f"{r['rss_ready_mb']} / {r['rss_warm_mb']} / {r['rss_after_mb']} | "
              f"{r['rss_growth_pct']} % | {gain} |")


if __name__ == "__main__":
    main()
