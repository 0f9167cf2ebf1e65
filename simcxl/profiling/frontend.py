"""A lower bound of a serving frontend's one-way latency: ``python -m simcxl.profiling.frontend -o DIR``.

A benchmark client's request reaches an engine through HTTP, JSON parsing, tokenization and IPC, and
each token comes back through detokenization and a streamed (server-sent events) response. This times
the part every OpenAI-compatible server shares, on loopback with the standard library only: a POST
whose JSON body carries a prompt of ``tokens`` words, parsed by the server, answered with one streamed
``data:`` chunk; half the median round trip is the one-way figure. Real frontends (vLLM's FastAPI
server, its tokenizer and ZMQ hop to the engine core) add to it, so it bounds
``serving.frontend_latency`` from below. Writes DIR/frontend.csv and DIR/frontend_info.json.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import platform
import socket
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PROMPT_TOKENS = (128, 1024, 8192)
ROUNDS = 200
COLUMNS = "prompt_tokens,body_bytes,round_trip_s,one_way_s"


class _Completions(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as uvicorn does: no 40 ms delayed-ACK stalls

    def do_POST(self) -> None:  # noqa: N802 - the standard library's handler name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        chunk = f"data: {json.dumps({'choices': [{'text': body['prompt'][:8]}]})}\n\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        self.wfile.write(chunk)

    def log_message(self, *args) -> None:
        return


def measure_rows() -> list[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Completions)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rows = [COLUMNS]
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1])
        connection.connect()
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for tokens in PROMPT_TOKENS:
            body = json.dumps({"model": "m", "prompt": " ".join(["token"] * tokens), "max_tokens": 1,
                               "stream": True})
            samples = []
            for _ in range(ROUNDS):
                start = time.perf_counter()
                connection.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
                connection.getresponse().read()
                samples.append(time.perf_counter() - start)
            round_trip = statistics.median(samples)
            rows.append(f"{tokens},{len(body)},{round_trip!r},{round_trip / 2!r}")
    finally:
        server.shutdown()
    return rows


def measure(out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "frontend.csv").write_text("\n".join(measure_rows()) + "\n")
    info = {"machine": platform.processor() or platform.machine(), "python": platform.python_version(),
            "date": datetime.date.today().isoformat(), "rounds": ROUNDS, "server": "http.server (loopback)"}
    (out_dir / "frontend_info.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, required=True)
    print(json.dumps(measure(parser.parse_args().output)))
