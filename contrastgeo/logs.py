"""structlog set-up shared by every process: JSON lines when output is not a terminal,
readable key=value lines on a terminal; context variables merged first."""

from __future__ import annotations

import logging
import sys

import structlog


def _stderr_logger(*args) -> structlog.PrintLogger:
    """A logger on the *current* ``sys.stderr``: a stream captured or replaced after
    configuration (tests, embedding applications) is never written to once closed."""
    return structlog.PrintLogger(file=sys.stderr)


def configure_logging(level: str = "INFO", json: bool | None = None) -> None:
    if json is None:
        json = not sys.stderr.isatty()
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
