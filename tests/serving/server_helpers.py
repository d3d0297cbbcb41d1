"""Start `zoo serve` as its own process on a loopback port and talk HTTP to it (stdlib only)."""

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `python -m zoo.serving ...` process; ``request`` returns ``(status, json, headers)``."""

    def __init__(self, args, log_path, ready_timeout=180):
        self.port = free_port()
        self.log_path = log_path
        self.log = open(log_path, "w")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zoo.serving", *args, "--port", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.wait_ready(ready_timeout)

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n"
                                   f"{self.output()}")
            try:
                status, _, _ = self.request("GET", "/readyz", timeout=5)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server was not ready in {timeout} s:\n{self.output()}")

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def request(self, method, path, body=None, headers=None, timeout=60):
        """``body``: bytes sent as is, anything else as JSON."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if body is not None and not isinstance(body, bytes):
                body = json.dumps(body).encode()
            conn.request(method, path, body=body, headers=headers or {})
            res = conn.getresponse()
            raw = res.read()
            kind = res.getheader("content-type") or ""
            data = json.loads(raw) if "json" in kind else raw.decode("utf-8", "replace")
            return res.status, data, {k.lower(): v for k, v in res.getheaders()}
        finally:
            conn.close()

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def stop(self, timeout=30):
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        finally:
            self.log.close()
