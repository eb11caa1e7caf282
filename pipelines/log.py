"""One logging format for progress and warnings (stderr); results go to stdout.

Modules log through ``logging.getLogger(__name__)`` (all under ``pipelines``). The CLI calls
:func:`setup` once: one handler on stderr, ``--quiet`` shows warnings and errors only,
``--verbose`` adds debug lines. Under Airflow nothing is set up here: the records propagate to
the task log. Library loggers (MLflow, GE, alembic) are not touched.
"""

from __future__ import annotations

import logging
import sys

PREFIX = {
    logging.DEBUG: "debug: ",
    logging.INFO: "",
    logging.WARNING: "warning: ",
    logging.ERROR: "error: ",
    logging.CRITICAL: "error: ",
}


class LineFormatter(logging.Formatter):
    """``<level>: message`` for everything but progress, which is the message alone."""

    def format(self, record: logging.LogRecord) -> str:
        return PREFIX.get(record.levelno, f"{record.levelname.lower()}: ") + record.getMessage()


def setup(level: int = logging.INFO) -> logging.Logger:
    """Send the package's records to stderr in the one format, at ``level``; idempotent."""
    root = logging.getLogger("pipelines")
    for h in list(root.handlers):
        if getattr(h, "_pipelines", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LineFormatter())
    handler._pipelines = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    return root
