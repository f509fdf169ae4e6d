"""MLServer beside Alama: a generic model server serving the bundle's own LightGBM, model only.

The comparison a SACCO's architect asks for: what does Alama's synchronous path (features from
Feast, both models, reasons, a durable decision) cost over a generic model server answering the
same model on the same machine? MLServer (with mlserver-lightgbm) runs from its own virtual
environment, `.venv-mlserver`, installed by `make mlserver-env` from the pinned
`bench/mlserver/requirements.txt` (its FastAPI and pydantic pins differ from Alama's, so it cannot
share Alama's environment). The same open-loop generator (`bench.load.open_loop`) posts V2
inference requests of one row, the bundle's tabular features of real applications, at the same
rates as `POST /v1/scores`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.load import RateResult, load_session, open_loop
from infra.local import REPO, run_dir
from services.common.settings import service_port

VENV = REPO / ".venv-mlserver"
MODEL_NAME = "alama-gbm"
HTTP_PORT = service_port(18080)
GRPC_PORT = service_port(18081)
METRICS_PORT = service_port(18082)


class MLServerUnavailable(RuntimeError):
    """MLServer's environment is missing or the server did not become ready."""


def model_repository(bundle: Path, folder: Path) -> Path:
    """A model repository holding one model: the bundle's native LightGBM file."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    model = folder / MODEL_NAME
    model.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": HTTP_PORT,
                "grpc_port": GRPC_PORT,
                "metrics_port": METRICS_PORT,
                "debug": False,
                # inference in the server's own process, as Alama's scoring does: one more
                # worker process would give MLServer a core Alama's services also want
                "parallel_workers": 0,
            },
            indent=2,
        )
    )
    (model / "model-settings.json").write_text(
        json.dumps(
            {
                "name": MODEL_NAME,
                "implementation": "mlserver_lightgbm.LightGBMModel",
                "parameters": {
                    "uri": str((bundle / "gbm.txt").resolve()),
                    "version": str(manifest["version"]),
                },
            },
            indent=2,
        )
    )
    return folder


def infer_bodies(rows: np.ndarray) -> list[dict[str, Any]]:
    """One V2 inference request per row (the bundle's tabular features, in its column order)."""
    return [
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [1, int(row.shape[0])],
                    "datatype": "FP64",
                    "data": [None if np.isnan(v) else float(v) for v in row],
                }
            ]
        }
        for row in rows
    ]


@contextmanager
def running(bundle: Path, *, timeout: float = 120.0) -> Iterator[str]:
    """Start MLServer on the bundle's LightGBM; its base URL while running; stopped after."""
    executable = VENV / "bin" / "mlserver"
    if not executable.exists():
        raise MLServerUnavailable(f"{executable} is missing: run `make mlserver-env`")
    folder = model_repository(bundle, run_dir() / "mlserver" / "models")
    log = (run_dir() / "mlserver" / "mlserver.log").open("w")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    process = subprocess.Popen(
        [str(executable), "start", str(folder)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env | {"PATH": f"{VENV / 'bin'}:{env.get('PATH', '')}"},
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{HTTP_PORT}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise MLServerUnavailable(f"MLServer exited ({process.returncode}); see {log.name}")
            try:
                ready = httpx.get(f"{url}/v2/models/{MODEL_NAME}/ready", timeout=2.0)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise MLServerUnavailable(f"MLServer not ready after {timeout:g}s; see {log.name}")
            time.sleep(0.5)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def pid_of_running() -> list[int]:
    """MLServer's processes (for the CPU meter), found by the model repository in their
    command line."""
    marker = str(run_dir() / "mlserver" / "models")
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline:
                pids.append(int(entry.name))
    return pids


async def mlserver_rates(
    url: str, rows: np.ndarray, rates: Sequence[float], duration: float, *, warm: bool = True
) -> list[RateResult]:
    bodies = infer_bodies(rows)
    path = f"/v2/models/{MODEL_NAME}/infer"
    async with load_session(url) as client:
        if warm:
            await open_loop(client, path, bodies, rate=50, duration=4, headers={})
        return [
            await open_loop(client, path, bodies, rate=rate, duration=duration, headers={})
            for rate in rates
        ]
