"""Typed errors for everything a user can cause, each with a message that says what was expected."""

from __future__ import annotations


class DuetError(Exception):
    """Base class of every error the toolkit raises on purpose."""


def one_line(error: BaseException, limit: int = 300) -> str:
    """A library's error text as one line of at most `limit` characters (torch's may hold a C++ stack trace)."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class DataFormatError(DuetError, ValueError):
    """A data file is malformed, truncated or empty; the message names the file and the line."""


class ConfigError(DuetError, ValueError):
    """A configuration value or a run directory is unusable."""


class SlotConfigError(ConfigError):
    """The modules named as slots do not exist, cannot hold slots, or share their parameters; the message lists the
    modules that could."""


class TaskError(ConfigError):
    """A task (a built-in name, an entry point or an import path) cannot be found, imported or built."""


class SlotShapeError(DuetError, ValueError):
    """A slot tensor is missing, extra, or has the wrong shape or dtype."""


class BlobError(DuetError, ValueError):
    """A weight blob is corrupt or cannot be decoded."""


class ManifestError(DuetError, ValueError):
    """A manifest does not satisfy the schema or disagrees with the artifacts."""


class ToleranceExceeded(DuetError, ValueError):
    """A runtime's output differs from PyTorch's by more than the target's tolerance."""


class TrainingDiverged(DuetError, RuntimeError):
    """Training produced a non-finite loss; the message names the stage, epoch and step, and no run was written."""


class EvaluationError(DuetError, RuntimeError):
    """A method scored a test device with NaN or infinite values (metrics would rank them as they please); the
    message names the method and the device, and no metrics file was written."""


class RequestError(DuetError, ValueError):
    """A generate request's body is invalid; the service answers it with a 4xx JSON error."""


class ServiceError(DuetError, RuntimeError):
    """The generation service refused a call or could not be reached; carries its status and error code."""

    def __init__(self, message: str, status: int = 0, code: str = "", retry_after: float | None = None):
        super().__init__(message)
        self.status, self.code, self.retry_after = status, code, retry_after  # status 0: no answer at all
