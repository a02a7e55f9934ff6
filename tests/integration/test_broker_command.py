"""``contrastgeo broker`` leaves no tansu behind: stopped by SIGTERM or SIGHUP it stops its
child before exiting; killed outright (SIGKILL: no handler runs), Linux signals the child,
which asked for it at start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from stream.broker import free_port
from tests.support.service import wait_for


def alive(pid: int) -> bool:
    """Running (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def start_broker_command() -> tuple[subprocess.Popen, int]:
    command = subprocess.Popen(
        [sys.executable, "-m", "contrastgeo", "broker", "--port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    first = command.stdout.readline()
    assert first.startswith("tansu pid "), first
    tansu = int(first.split()[-1])
    assert "listening" in command.stdout.readline()
    return command, tansu


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_stopping_or_killing_the_broker_command_leaves_no_tansu(signum):
    command, tansu = start_broker_command()
    assert alive(tansu)
    try:
        command.send_signal(signum)
        code = command.wait(timeout=30)
        assert code == (0 if signum != signal.SIGKILL else -signal.SIGKILL)
        wait_for(lambda: not alive(tansu), f"tansu (pid {tansu}) gone", timeout=30)
    finally:
        if alive(tansu):
            os.kill(tansu, signal.SIGKILL)
