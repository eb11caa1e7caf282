"""The one exception type the CLI turns into a one-line reason and a non-zero exit."""


class PipelineError(Exception):
    """A failure with a message meant for a human: one line, names the problem."""


class ValidationFailed(PipelineError):
    """A batch or training set failed its expectations; the message lists each failure."""

    def __init__(self, message: str, failures: list[str]) -> None:
        super().__init__(message)
        self.failures = failures
