"""A local service for the demo, the benchmarks and the tests: a worker subprocess with
given settings (``start_worker`` / ``stop_worker``), the settings of more workers beside it
(``replicas``), and a throwaway service around them
(``local_service``: a model exported into a temporary store, its locations indexed in a
temporary embedded index, and the embedded broker with the service's topics; the settings
of a worker for it, with fast group joins)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stream.settings import WorkerSettings


@contextmanager
def local_service(model_dir: Path, **overrides: Any) -> Iterator[tuple[WorkerSettings, str, Path]]:
    """Yields (settings, served model version, scratch folder); everything is removed after."""
    from model import ContrastGeo
    from model.prompts import load_locations
    from refit.publish import serve
    from stream.broker import EmbeddedBroker, ensure_topics_sync, free_port

    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        tmp = Path(tmp)
        settings = WorkerSettings(
            model_store=tmp / "models",
            index_path=tmp / "index",
            data_dir=tmp / "worker",
            broker=broker.url,
            web_port=free_port(),
            session_timeout_s=2.0,
            heartbeat_interval_s=0.3,
            rebalance_timeout_s=2.0,
            **overrides,
        )
        locations = load_locations(model_dir / "locations.jsonl")
        version = serve(settings, ContrastGeo.load(model_dir), locations)
        ensure_topics_sync(settings)
        yield settings, version, tmp


def replicas(settings: WorkerSettings, n: int, scratch: Path) -> list[WorkerSettings]:
    """The settings of ``n`` workers in one group: ``settings`` and ``n - 1`` more, each with
    its own web port, data folder and copy of the embedded index (its engine opens a
    collection in one process only; workers on several hosts share a Qdrant server)."""
    import shutil

    from stream.broker import free_port

    if n < 1:
        raise ValueError(f"need at least one worker, not {n}")
    more = []
    for i in range(1, n):
        update: dict[str, Any] = {"web_port": free_port(), "data_dir": scratch / f"worker-{i}"}
        if not settings.qdrant_url:
            update["index_path"] = scratch / f"index-{i}"
            shutil.copytree(settings.index_path, update["index_path"])
        more.append(settings.model_copy(update=update))
    return [settings, *more]


def worker_env(settings) -> dict[str, str]:
    """The environment that gives a worker subprocess these settings."""
    from pydantic import SecretStr

    env = dict(os.environ)
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, (list, tuple, dict)):
            value = json.dumps(value)
        env[f"CONTRASTGEO_{name.upper()}"] = str(value)
    return env


def worker_ready(settings: WorkerSettings) -> bool:
    """Whether the worker's ``/readyz`` answers 200 (no answer yet: False)."""
    import urllib.error
    import urllib.request

    url = f"http://127.0.0.1:{settings.web_port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def start_worker(settings, log_file: Path | None = None) -> subprocess.Popen:
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "contrastgeo", "--log-json", "worker"],
        env=worker_env(settings),
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def stop_worker(process: subprocess.Popen, timeout: float = 30) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
