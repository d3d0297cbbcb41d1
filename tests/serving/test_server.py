"""`zoo serve` as a separate process on a loopback port, over HTTP: every endpoint for each
runtime, a table of malformed requests, concurrency, a full queue, timeouts, SIGTERM with
requests in flight, a model that fails to load, and a property-based fuzz of the API."""

import concurrent.futures
import json
import math
import re
import shutil
import signal
import socket
import threading
import time

import pytest
from server_helpers import Server

from zoo.cli import main
from zoo.decoding import BeamSearch

TEXTS = ["Tengo hambre.", "Hola.", "¿Dónde está la estación de tren?", "Me gusta leer.",
         "Hace frío hoy.", "Mi hermano vive en Madrid."]
RUNTIMES = ("onnx", "savedmodel", "litert")
# After a graceful shutdown uvicorn re-raises the signal it caught, so a supervisor sees how
# the process ended: exit status 0 or "terminated by SIGTERM" are both clean.
CLEAN_EXIT = (0, -signal.SIGTERM)


@pytest.fixture(scope="module")
def server(tiny_exports, tmp_path_factory):
    """One server with the three runtimes, a 20 ms batch window (so concurrent requests
    share batches) and small limits for the limit tests."""
    model, root = tiny_exports
    args = [a for rt in RUNTIMES for a in ("--model", f"{rt}={root / rt}")]
    srv = Server([*args, "--batch-timeout-micros", "20000", "--max-texts", "8",
                  "--max-chars", "500", "--max-body-bytes", "20000"],
                 tmp_path_factory.mktemp("server") / "server.log")
    yield model, srv
    assert srv.stop() in CLEAN_EXIT, srv.output()


def approx(a, b, tol=1e-4):
    return all(math.isclose(x, y, abs_tol=tol) for x, y in zip(a, b)) and len(a) == len(b)


# ------------------------------------------------------------------ endpoints, per runtime
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_generate_matches_keras(server, runtime):
    model, srv = server
    status, out, _ = srv.post(f"/v1/models/{runtime}:generate", {"texts": TEXTS})
    assert status == 200, out
    assert out["model"] == runtime and out["outputs"] == model.translate(TEXTS)
    scores = model.generate(model.encode_texts(TEXTS)).scores[:, 0]
    assert approx(out["scores"], [float(x) for x in scores], 1e-3)
    assert out["source_ids_dropped"] == [0] * len(TEXTS) and "attention" not in out


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_attention_with_tokens(server, runtime):
    model, srv = server
    status, out, _ = srv.post(f"/v1/models/{runtime}:generate",
                              {"texts": TEXTS[:2], "return_attention": True})
    assert status == 200, out
    ids = model.encode_texts(TEXTS[:2]).numpy()
    for att, row in zip(out["attention"], ids):
        n_src = int((row != 0).sum())
        assert len(att["source_tokens"]) == n_src and att["source_tokens"][-1] == "</s>"
        assert "".join(att["source_tokens"][:-1]).replace("▁", " ").strip() in TEXTS
        assert len(att["weights"]) == len(att["output_tokens"]) >= 1
        for w in att["weights"]:  # a distribution over the real source tokens only
            assert len(w) == n_src and abs(sum(w) - 1) < 1e-3 and min(w) >= 0


@pytest.mark.parametrize("runtime", ("onnx", "savedmodel"))
def test_beam_is_the_exported_beam(server, runtime):
    model, srv = server
    status, out, _ = srv.post(f"/v1/models/{runtime}:generate",
                              {"texts": TEXTS, "beam_size": 2, "length_penalty": 0.6})
    assert status == 200, out
    expected = model.translate(TEXTS, strategy="beam", beam_size=2, length_penalty=0.6,
                               coverage_penalty=0.0)
    assert out["outputs"] == expected


@pytest.mark.parametrize("runtime", ("onnx", "savedmodel"))
def test_a_request_picks_its_beam_size(server, runtime):
    """An export made with beam 2 searches with the beam a request asks for."""
    model, srv = server
    for beam_size in (1, 3):
        status, out, _ = srv.post(f"/v1/models/{runtime}:generate",
                                  {"texts": TEXTS, "beam_size": beam_size,
                                   "length_penalty": 0.6})
        assert status == 200, out
        assert out["outputs"] == model.translate(
            TEXTS, strategy=BeamSearch(beam_size=beam_size, length_penalty=0.6))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_tf_serving_endpoints(server, runtime):
    _, srv = server
    status, gen, _ = srv.post(f"/v1/models/{runtime}:generate", {"texts": TEXTS[:3]})
    status, rows, _ = srv.post(f"/v1/models/{runtime}:predict",
                               {"instances": [TEXTS[0], {"text": TEXTS[1]},
                                              {"b64": "wr9Ew7NuZGUgZXN0w6EgbGEgZXN0YWNpw7NuIGRlIHRyZW4/"}]})
    assert status == 200, rows
    assert [p["text"] for p in rows["predictions"]] == gen["outputs"]
    assert approx([p["scores"] for p in rows["predictions"]], gen["scores"])
    status, cols, _ = srv.post(f"/v1/models/{runtime}:predict", {"inputs": TEXTS[:3]})
    assert status == 200 and cols["outputs"]["text"] == gen["outputs"]
    status, cols, _ = srv.post(f"/v1/models/{runtime}/versions/1:predict",
                               {"inputs": {"text": TEXTS[:3]}})
    assert status == 200 and cols["outputs"]["text"] == gen["outputs"]

    status, info, _ = srv.get(f"/v1/models/{runtime}")
    assert status == 200
    assert info["model_version_status"] == [{"version": "1", "state": "AVAILABLE", "status": {
        "error_code": "OK", "error_message": ""}}]
    status, meta, _ = srv.get(f"/v1/models/{runtime}/metadata")
    sigs = meta["metadata"]["signature_def"]["signature_def"]
    expected = {"serving_default", "generate"} | ({"generate_beam"} if runtime != "litert"
                                                  else set())
    assert status == 200 and set(sigs) == expected
    assert sigs["serving_default"]["inputs"]["text"]["dtype"] == "DT_STRING"
    if runtime != "litert":
        status, beam, _ = srv.post(f"/v1/models/{runtime}:predict", {
            "signature_name": "generate_beam",
            "instances": [{"text": t, "length_penalty": 0.6} for t in TEXTS[:3]]})
        status2, same, _ = srv.post(f"/v1/models/{runtime}:generate",
                                    {"texts": TEXTS[:3], "strategy": "beam"})
        assert status == status2 == 200
        assert [p["text"] for p in beam["predictions"]] == same["outputs"]


def test_operations_endpoints(server):
    _, srv = server
    assert srv.get("/healthz")[:2] == (200, {"status": "ok"})
    status, ready, _ = srv.get("/readyz")
    assert status == 200 and ready["models"] == {rt: "AVAILABLE" for rt in RUNTIMES}
    status, listing, _ = srv.get("/v1/models")
    assert {m["name"]: m["runtime"] for m in listing["models"]} == {rt: rt for rt in RUNTIMES}
    assert all(m["task"] == "translation" for m in listing["models"])
    status, schema, _ = srv.get("/openapi.json")
    body = schema["paths"]["/v1/models/{name}:generate"]["post"]["requestBody"]
    assert "texts" in body["content"]["application/json"]["schema"]["properties"]
    assert "/v1/models/{name}:predict" in schema["paths"]
    status, page, headers = srv.get("/")
    assert status == 200 and 'id="heatmap"' in page and "text/html" in headers["content-type"]

    srv.post("/v1/models/onnx:generate", {"texts": ["Hola."]})
    srv.post("/v1/models/onnx:generate", {"texts": []})
    srv.post("/v1/models/nope:generate", {"texts": ["Hola."]})
    status, text, headers = srv.get("/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")

    def value(pattern):
        found = re.search(pattern + r" (\S+)", text)
        assert found, pattern
        return float(found.group(1))

    assert value(r'zoo_requests_total\{endpoint="generate",model="onnx",status="200"\}') >= 1
    assert value(r'zoo_request_errors_total\{endpoint="generate",model="onnx",status="400"\}') >= 1
    assert value(r'zoo_request_errors_total\{endpoint="generate",model="\(unknown\)",'
                 r'status="404"\}') >= 1
    assert value(r'zoo_batch_size_count\{model="onnx"\}') >= 1
    assert value(r'zoo_request_duration_seconds_count\{endpoint="generate",model="onnx"\}') >= 1
    assert value(r'zoo_queue_depth\{model="onnx"\}') == 0


# ------------------------------------------------------------------ malformed requests
GEN = "/v1/models/onnx:generate"
PRED = "/v1/models/onnx:predict"
BAD = [  # (path, body, status, message pattern, field)
    (GEN, b'{"texts": ["a"', 400, r"malformed JSON at line 1 column 15", None),
    (GEN, b"", 400, "request body is empty", None),
    (GEN, b'{"texts": ["\xff"]}', 400, r"not valid UTF-8 \(byte 12\)", None),
    (GEN, b"[1, 2]", 400, "must be a JSON object, got an array", None),
    (GEN, b'{"texts": ["a"], "length_penalty": NaN}', 400, "NaN is not a JSON number", None),
    (GEN, {"text": ["a"]}, 400, "unknown field 'text'.*did you mean 'texts'", "text"),
    (GEN, {"strategy": "greedy"}, 400, "field 'texts' is missing", "texts"),
    (GEN, {"texts": "Hola."}, 400, "got one string; wrap it in a list", "texts"),
    (GEN, {"texts": []}, 400, "texts is empty", "texts"),
    (GEN, {"texts": ["a", 3]}, 400, r"texts\[1\] is int, expected a string", "texts[1]"),
    (GEN, {"texts": ["a", "  "]}, 400, r"texts\[1\] is empty or whitespace only", "texts[1]"),
    (GEN, {"texts": ["a"] * 9}, 400, "texts has 9 items; the limit is 8", "texts"),
    (GEN, {"texts": ["a", "b" * 501]}, 400, r"texts\[1\] has 501 characters; the limit is 500",
     "texts[1]"),
    (GEN, b'{"texts": ["\\ud800"]}', 400, r"texts\[0\] is not valid Unicode", "texts[0]"),
    (GEN, {"texts": ["a"], "beam_size": 65}, 400, r"beam_size must be in \[1, 64\]",
     "beam_size"),
    ("/v1/models/litert:generate", {"texts": ["a"], "no_repeat_ngram_size": 2}, 400,
     "no_repeat_ngram_size is fixed at export to 0 in this litert export",
     "no_repeat_ngram_size"),
    (GEN, {"texts": ["a"], "max_length": 99}, 400, "max_length 99 is over this export's maximum of 6",
     "max_length"),
    (GEN, {"texts": ["a"], "length_penalty": -1}, 400, "length_penalty must be in \\[0, 10\\]",
     "length_penalty"),
    (GEN, {"texts": ["a"], "length_penalty": "x"}, 400, "length_penalty must be a number",
     "length_penalty"),
    (GEN, {"texts": ["a"], "strategy": "bean"}, 400, "did you mean 'beam'", "strategy"),
    (GEN, {"texts": ["a"], "strategy": "sampling"}, 400, "'sampling' is not in this onnx",
     "strategy"),
    (GEN, {"texts": ["a"], "return_attention": "yes"}, 400, "return_attention must be true "
     "or false", "return_attention"),
    (GEN, {"texts": ["x" * 400] * 8 * 7}, 413, "the limit is 20,000", None),
    ("/v1/models/nope:generate", {"texts": ["a"]}, 404, "model 'nope' is not served here",
     "model"),
    ("/v1/models/litert:generate", {"texts": ["a"], "strategy": "beam"}, 400,
     "'beam' is not in this litert export", "strategy"),
    (PRED, {"instances": ["a"], "inputs": ["a"]}, 400, "exactly one of 'instances'",
     "instances"),
    (PRED, {"instances": "a"}, 400, "instances must be an array", "instances"),
    (PRED, {"instances": [{"txt": "a"}]}, 400, r"unknown field 'txt' in instances\[0\]",
     "instances[0].txt"),
    (PRED, {"instances": [{"b64": "%%%"}]}, 400, "not base64 of UTF-8", "instances[0].b64"),
    (PRED, {"instances": [""]}, 400, r"instances\[0\] is empty", "instances[0]"),
    (PRED, {"signature_name": "nope", "instances": ["a"]}, 400, "signature_name 'nope' is "
     "not in this model", "signature_name"),
    (PRED, {"signature_name": "generate_beam", "instances": [
        {"text": "a", "length_penalty": 0.1}, {"text": "b", "length_penalty": 0.2}]}, 400,
     r"instances\[1\].length_penalty differs", "instances[1].length_penalty"),
    (PRED, {"inputs": {"text": ["a"], "length_penalty": 1}}, 400,
     "unknown field 'length_penalty' in inputs", "inputs.length_penalty"),
    ("/v1/models/onnx/versions/2:predict", {"inputs": ["a"]}, 404, "version '2' is not served",
     "version"),
    ("/v1/nothing", {"texts": ["a"]}, 404, "no such endpoint: POST /v1/nothing", None),
]


@pytest.mark.parametrize("path,body,status,message,field", BAD,
                         ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_malformed_requests_name_the_problem(server, path, body, status, message, field):
    _, srv = server
    got, out, _ = srv.post(path, body)
    assert got == status, out
    assert set(out) <= {"error", "field"} and re.search(message, out["error"]), out
    assert out.get("field") == field


def test_wrong_methods_and_unknown_models(server):
    _, srv = server
    status, out, _ = srv.request("DELETE", "/v1/models/onnx")
    assert status == 405 and out == {"error": "method DELETE is not allowed on /v1/models/onnx"}
    assert srv.get("/v1/models/nope")[0] == 404
    assert srv.get("/v1/models/nope/metadata")[0] == 404
    # The server is unharmed.
    assert srv.post(GEN, {"texts": ["Hola."]})[0] == 200


# ------------------------------------------------------------------ concurrency
def test_concurrent_requests_return_what_sequential_ones_do(server):
    _, srv = server
    requests = [{"texts": TEXTS[i % 6:i % 6 + 1 + i % 3]} for i in range(24)]
    sequential = [srv.post(GEN, r)[1] for r in requests]
    _, before, _ = srv.get("/metrics")
    batches_before = float(re.search(r'zoo_batch_size_count\{model="onnx"\} (\S+)',
                                     before).group(1))
    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        concurrent_out = list(pool.map(lambda r: srv.post(GEN, r)[1], requests))
    for seq, con in zip(sequential, concurrent_out):
        assert con["outputs"] == seq["outputs"] and approx(con["scores"], seq["scores"])
    _, after, _ = srv.get("/metrics")
    batches = float(re.search(r'zoo_batch_size_count\{model="onnx"\} (\S+)',
                              after).group(1)) - batches_before
    assert batches < len(requests)  # requests shared batches


# ------------------------------------------------------------------ fuzz
def test_fuzzed_requests_never_get_a_5xx(server):
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    _, srv = server
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers(-10, 10**6) | st.floats(allow_nan=False)
        | st.text(max_size=30), lambda inner: st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
    fields = {"texts": st.lists(st.text(max_size=60), max_size=10) | json_values,
              "strategy": st.sampled_from(["greedy", "beam", "sampling", "x"]) | json_values,
              "beam_size": st.integers(-2, 5) | json_values,
              "max_length": st.integers(-2, 10) | json_values,
              "length_penalty": st.floats(-1, 3) | json_values,
              "coverage_penalty": st.floats(-1, 3) | json_values,
              "no_repeat_ngram_size": st.integers(-1, 4) | json_values,
              "return_attention": st.booleans() | json_values,
              "signature_name": st.sampled_from(["generate", "generate_beam", "?"]),
              "instances": st.lists(st.text(max_size=40) | json_values, max_size=5),
              "inputs": json_values}
    bodies = st.one_of(
        st.fixed_dictionaries({}, optional=fields).map(lambda d: json.dumps(d).encode()),
        json_values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=200))
    paths = st.sampled_from([GEN, PRED, "/v1/models/litert:generate",
                             "/v1/models/savedmodel:predict", "/v1/models/x:generate"])

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(path=paths, body=bodies)
    def fuzz(path, body):
        status, out, _ = srv.post(path, body)
        assert status < 500, (path, body, out)
        if status >= 400:
            assert isinstance(out, dict) and isinstance(out.get("error"), str)

    fuzz()
    assert srv.get("/healthz")[0] == 200
    assert srv.post(GEN, {"texts": ["Hola."]})[0] == 200


# ------------------------------------------------------------------ queue, timeout, SIGTERM
def _post_in_thread(srv, body, results, i):
    results[i] = srv.post(GEN, body, timeout=60)


def test_full_queue_answers_503_and_sigterm_finishes_requests_in_flight(tiny_exports,
                                                                         tmp_path):
    _, root = tiny_exports
    # A 1.5 s batch window holds the first (greedy) request's batch open; beam requests cannot
    # join it, so they wait in the queue of 2 and the rest are turned away.
    srv = Server(["--model", f"onnx={root / 'onnx'}", "--max-queue", "2",
                  "--batch-timeout-micros", "1500000"], tmp_path / "server.log")
    results = {}
    threads = [threading.Thread(target=_post_in_thread, args=(
        srv, {"texts": [TEXTS[0]]}, results, "greedy"))]
    threads[0].start()
    time.sleep(0.3)
    for i in range(4):
        t = threading.Thread(target=_post_in_thread, args=(
            srv, {"texts": [TEXTS[i + 1]], "strategy": "beam"}, results, i))
        t.start()
        threads.append(t)
        time.sleep(0.1)
    time.sleep(0.2)
    assert srv.get("/healthz")[0] == 200  # the event loop answers while requests wait
    srv.proc.send_signal(signal.SIGTERM)  # with three requests in flight
    for t in threads:
        t.join(60)
    assert srv.proc.wait(30) in CLEAN_EXIT, srv.output()
    assert "Application shutdown complete" in srv.output()
    statuses = sorted(results[k][0] for k in results)
    assert statuses == [200, 200, 200, 503, 503], results
    for key, (status, out, headers) in results.items():
        if status == 503:
            assert headers["retry-after"] == "1" and "busy" in out["error"]
        else:
            assert len(out["outputs"]) == 1
    srv.log.close()


def test_request_timeout_answers_504_and_the_server_goes_on(tiny_exports, tmp_path):
    _, root = tiny_exports
    srv = Server(["--model", f"onnx={root / 'onnx'}", "--request-timeout", "0.3",
                  "--batch-timeout-micros", "2000000"], tmp_path / "server.log")
    try:
        status, out, _ = srv.post(GEN, {"texts": ["Hola."]})
        assert status == 504 and "longer than 0.3 s" in out["error"]
        assert srv.get("/healthz")[0] == 200
        # A body that never finishes arriving does not hold the connection for ever.
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as conn:
            conn.sendall(b"POST " + GEN.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Length: 100\r\n\r\n{\"texts\": [")
            answer = b""
            while b"did not arrive" not in answer:  # headers and body may come apart
                chunk = conn.recv(4096)
                if not chunk:
                    break
                answer += chunk
            answer = answer.decode()
        assert answer.startswith("HTTP/1.1 408") and "did not arrive within 0.3 s" in answer
        assert srv.get("/healthz")[0] == 200
    finally:
        assert srv.stop() in CLEAN_EXIT


def test_a_model_that_fails_to_load_stops_the_server(tiny_exports, tmp_path):
    _, root = tiny_exports
    bad = tmp_path / "bad"
    shutil.copytree(root / "onnx", bad)
    (bad / "greedy.onnx").write_bytes(b"not onnx")
    with pytest.raises(RuntimeError, match="exited with 1") as err:
        Server(["--model", f"bad={bad}"], tmp_path / "server.log")
    assert "greedy.onnx: cannot be loaded by onnxruntime" in str(err.value)


# ------------------------------------------------------------------ the command line
@pytest.mark.parametrize("argv,message", [
    ([], "give an export directory"),
    (["/no/such/dir"], "no such export directory"),
    (["--model", "x"], "--model takes NAME=DIR"),
    (["--model", "a b=/tmp"], "may hold only letters"),
    (["ONNX", "--runtime", "savedmodel"], "holds a 'onnx' export, not 'savedmodel'"),
    (["ONNX", "--port", "70000"], "must be a port number"),
    (["ONNX", "--max-batch-size", "0"], "--max-batch-size: must be >= 1"),
])
def test_serve_command_errors(tiny_exports, capsys, argv, message):
    _, root = tiny_exports
    argv = [str(root / "onnx") if a == "ONNX" else a for a in argv]
    assert main(["serve", *argv]) == 2
    assert message in capsys.readouterr().err
