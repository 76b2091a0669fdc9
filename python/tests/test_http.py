"""cria.stream against an HTTP server speaking Replicate's predictions API.

Two servers: a small fixture written here from Replicate's documented
protocol (to pin the client's parsing: multi-line data, errors, HTTP
errors, cancel on an early break), and the real `cria serve`."""
import json
import socket
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import cria

from conftest import cli_path, cli_text

PIECES = ["Hello", ", multi\nline", " caf\u00e9 \u2615", "\n\nend"]


class Fixture(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the stream ends when the connection closes
    log: list = []

    def log_message(self, *args):
        pass

    def send_json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        Fixture.log.append((self.path, body, self.headers.get("Authorization")))
        if self.path.endswith("/cancel"):
            return self.send_json(200, {"status": "canceled"})
        if body.get("input", {}).get("prompt") == "invalid":
            return self.send_json(422, {"detail": "input.prompt: invalid"})
        if not body.get("stream"):
            return self.send_json(400, {"detail": "stream must be true"})
        pid = body["input"]["prompt"]
        self.send_json(201, {"id": pid, "status": "starting",
                             "urls": {"get": f"/v1/predictions/{pid}", "cancel": f"/v1/predictions/{pid}/cancel",
                                      "stream": f"http://127.0.0.1:{self.server.server_port}/stream/{pid}"}})

    def do_GET(self):
        Fixture.log.append((self.path, None, self.headers.get("Accept")))
        if self.path == "/v1/models":
            return self.send_json(200, {"object": "list", "data": [{"id": "meta/meta-llama-3-8b-instruct"}]})
        kind = self.path.rsplit("/", 1)[1]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        w = self.wfile
        w.write(b": a comment line\n\n")
        for i, p in enumerate(PIECES):
            data = "".join(f"data: {line}\n" for line in p.split("\n"))
            w.write(f"event: output\nid: {i}\n{data}\n".encode())
            w.flush()
            if kind == "slow":
                time.sleep(0.2)
        if kind == "error":
            w.write(b'event: error\ndata: {"detail": "the model fell over"}\n\n')
        elif kind != "truncated":
            w.write(b"event: done\ndata: {}\n\n")


@pytest.fixture
def fixture_url():
    Fixture.log = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Fixture)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


def test_client_reads_the_protocol(fixture_url):
    events = list(cria.stream(fixture_url + "/meta/meta-llama-3-8b-instruct", input={"prompt": "ok"},
                              api_token="secret"))
    assert "".join(str(e) for e in events) == "".join(PIECES)
    assert [e.event.value for e in events] == ["output"] * len(PIECES) + ["done"]
    assert events[1].id == "1"
    path, body, auth = Fixture.log[0]
    assert path == "/v1/models/meta/meta-llama-3-8b-instruct/predictions"
    assert body == {"input": {"prompt": "ok"}, "stream": True} and auth == "Bearer secret"
    assert Fixture.log[1] == ("/stream/ok", None, "text/event-stream")


def test_client_reference_forms(fixture_url):
    list(cria.stream(fixture_url, input={"prompt": "ok"}))  # the model the server lists
    list(cria.stream("owner/name:abc123", input={"prompt": "ok"}, base_url=fixture_url))
    assert [p for p, _, _ in Fixture.log[:2]] == ["/v1/models", "/v1/models/meta/meta-llama-3-8b-instruct/predictions"]
    assert Fixture.log[3][0] == "/v1/predictions" and Fixture.log[3][1]["version"] == "abc123"


def test_client_errors(fixture_url):
    with pytest.raises(cria.ServerError, match="input.prompt: invalid") as e:
        cria.stream(fixture_url + "/a/b", input={"prompt": "invalid"})
    assert e.value.status_code == 422
    with pytest.raises(cria.ServerError, match="the model fell over"):
        list(cria.stream(fixture_url, input={"prompt": "error"}))
    with pytest.raises(cria.ServerError, match="without a done event"):
        list(cria.stream(fixture_url, input={"prompt": "truncated"}))
    with pytest.raises(cria.ServerError):
        cria.stream("http://127.0.0.1:9", input={"prompt": "x"})  # nothing listens on the discard port


def test_client_cancels_when_left_early(fixture_url):
    for event in cria.stream(fixture_url + "/a/b", input={"prompt": "slow"}):
        break
    assert ("/v1/predictions/slow/cancel", {}, None) in Fixture.log


# ---- the real server -------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def serve(llama):
    probe = subprocess.run([cli_path(), "serve", "--help"], capture_output=True)
    if probe.returncode != 0:
        # Marked, not passed: `cria serve` is issue 14 (branch `serve`); this
        # test runs for real as soon as the command exists in the build.
        pytest.xfail("cria serve is not in this build (issue 14); the HTTP client is tested against the fixture")
    port = free_port()
    proc = subprocess.Popen([cli_path(), "serve", "-m", llama, "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/health", timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read().decode())
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_seed_loop_against_cria_serve(serve, llama, capsys):
    for event in cria.stream(
        serve + "/meta/meta-llama-3-70b-instruct",
        input={
            "prompt": "Can you write a poem about open source machine learning?"
        },
    ):
        print(str(event), end="")
    assert capsys.readouterr().out
    # Same input, same text: through the server, locally, and from `cria run`.
    for inp, cli in (({"prompt": "Tell me a fortune.", "temperature": 0, "max_tokens": 40},
                      ["--greedy", "-n", "40"]),
                     ({"prompt": "Tell me a fortune.", "seed": 11, "system_prompt": "Be brief.", "top_k": 20},
                      ["--system", "Be brief.", "--seed", "11", "--temperature", "0.6", "--top-p", "0.9",
                       "--top-k", "20", "-n", "512"])):
        got = "".join(str(e) for e in cria.stream(serve, input=inp))
        assert got == "".join(str(e) for e in cria.stream(llama, input=inp))
        if "--system" not in cli:
            cli = ["--system", "You are a helpful assistant", *cli]
        assert got == cli_text("-m", llama, "--chat", "-p", "Tell me a fortune.", *cli)
    # A bad input is the server's 422, raised with its message.
    with pytest.raises(cria.ServerError, match="prompt") as e:
        cria.stream(serve, input={"prompt": ""})
    assert e.value.status_code == 422
