"""The exceptions of the environment layer: an environment that cannot
start, one that failed in use, and a value or a call that failed across the
boundary. Standard library only."""

from __future__ import annotations

from typing import Any, Mapping


class EnvUnavailable(Exception):
    """The environment cannot start here; the message says how to fix that."""


class EnvError(Exception):
    """The environment failed while in use (worker died, timed out, ...)."""

    def __init__(self, message: str, diagnostics: str = ""):
        super().__init__(message)
        self.diagnostics = diagnostics

    def __str__(self) -> str:
        text = super().__str__()
        if self.diagnostics:
            text += "\n--- diagnostics ---\n" + self.diagnostics.rstrip()
        return text


class JobTimeout(EnvError):
    """A job ran longer than its timeout; the worker was recycled."""


class WorkerDied(EnvError):
    """The worker's stream ended while a reply was awaited."""


class SerializationError(TypeError):
    """A value cannot cross between host and environment (only JSON does)."""


class RemoteError(Exception):
    """The function raised inside the environment.

    ``type_name``, ``remote_message`` and ``remote_traceback`` are the remote
    exception's; ``str()`` shows them all, so pytest prints the traceback with
    the file and line in the user's code.
    """

    def __init__(self, env: str, payload: Mapping[str, Any]):
        self.env = env
        self.type_name = payload.get("type", "Exception")
        self.remote_message = payload.get("message", "")
        self.remote_traceback = payload.get("traceback", "")
        super().__init__(self._text())

    def _text(self) -> str:
        head = f"{self.type_name}: {self.remote_message}"
        if self.remote_traceback:
            return f"{head}\n\nRemote traceback (environment {self.env!r}):\n{self.remote_traceback.rstrip()}"
        return f"{head} (in environment {self.env!r})"
