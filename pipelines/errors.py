"""The one exception type the CLI turns into a one-line reason and a non-zero exit, and the
one way to shorten anything else (an exception, a tool's output) to such a line."""

from __future__ import annotations

from collections.abc import Iterable


class PipelineError(Exception):
    """A failure with a message meant for a human: one line, names the problem."""


class ValidationFailed(PipelineError):
    """A batch or training set failed its expectations; the message lists each failure."""

    def __init__(self, message: str, failures: list[str]) -> None:
        super().__init__(message)
        self.failures = failures


def first_line(source: BaseException | str, skip: Iterable[str] = (), last: bool = False, limit: int = 500) -> str:
    """The first (or ``last``) non-empty line of an exception's message or of a tool's output,
    ignoring lines that start with any of ``skip`` (a JVM stack trace, say). An exception with
    no message gives its type name."""
    text = str(source)
    skip = tuple(skip)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    useful = [line for line in lines if not (skip and line.startswith(skip))] or lines
    if not useful:
        return type(source).__name__ if isinstance(source, BaseException) else ""
    return (useful[-1] if last else useful[0])[:limit]


def describe_crash(exc: BaseException) -> str:
    """An unexpected exception as one short line: its type and the first line of its message."""
    return f"{type(exc).__name__}: {first_line(exc, limit=200) if str(exc).strip() else ''}"
