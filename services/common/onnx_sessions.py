"""How every service opens an ONNX model: a fixed thread count, and threads that sleep when idle.

ONNX Runtime's intra-op threads spin after each run by default, waiting for the next one. On the
2-core machines Alama runs on, beside Kafka, Redis, PostgreSQL and eight services, that spinning
took a core from everyone else between requests; a thread woken from sleep costs microseconds.
"""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort


def session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def open_session(path: Path | str, threads: int) -> ort.InferenceSession:
    return ort.InferenceSession(
        str(path), session_options(threads), providers=["CPUExecutionProvider"]
    )
