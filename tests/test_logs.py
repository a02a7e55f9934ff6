"""Logging writes to whatever ``sys.stderr`` is at the time of the call."""

import io
import json
import sys

import structlog

from contrastgeo.logs import configure_logging


def test_logs_follow_the_current_stderr(monkeypatch):
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging("INFO", json=True)
    first.close()  # e.g. a test's captured stream, closed after configuration
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    structlog.get_logger().info("hello", post_id="1")
    assert json.loads(second.getvalue())["post_id"] == "1"
