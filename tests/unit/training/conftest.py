"""Fixtures for the training tests: a local stub of the outcomes service's shadow pairs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest


class Stub:
    """What the stub answers, and which challengers it was asked about."""

    def __init__(self) -> None:
        self.status = 200
        self.body: Any = {"rows": []}
        self.asked: list[str] = []


def shadow_pairs(n: int, seed: int = 3) -> list[dict[str, Any]]:
    """Matured loans as the contract has them: the challenger close to the champion."""
    rng = np.random.default_rng(seed)
    champion = rng.uniform(0.02, 0.5, n)
    challenger = np.clip(champion + rng.normal(0, 0.02, n), 0.01, 0.99)
    defaulted = rng.random(n) < challenger

    def band(pd: float) -> str:
        return "approve" if pd < 0.15 else "review" if pd < 0.4 else "decline"

    return [
        {
            "defaulted": bool(defaulted[i]),
            "champion_pd": float(champion[i]),
            "challenger_pd": float(challenger[i]),
            "champion_band": band(champion[i]),
            "challenger_band": band(challenger[i]),
            "gender": ["female", "male"][i % 2],
            "age_band": ["18-35", "36+"][i % 2],
        }
        for i in range(n)
    ]


@pytest.fixture
def outcomes() -> Iterator[tuple[str, Stub]]:
    """A stub outcomes service on a free local port: (its URL, what it answers)."""
    stub = Stub()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path != "/shadow/pairs.json":
                self.send_error(404)
                return
            stub.asked.extend(parse_qs(url.query).get("challenger", []))
            data = json.dumps(stub.body).encode()
            self.send_response(stub.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", stub
    finally:
        server.shutdown()
        server.server_close()
