"""Every error loopml raises on purpose.

Each subclass also inherits the builtin it resembles (as scikit-learn's
``NotFittedError(ValueError, AttributeError)``), carries the CLI exit code and the HTTP
status it maps to, and an optional ``field`` naming the input at fault. Messages say what
failed, why, and what to do.
"""

from __future__ import annotations

from typing import Any


class LoopmlError(Exception):
    """Base class: a failure loopml understands and can explain."""

    exit_code = 2
    http_status = 400

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message, "status": self.http_status}
        if self.field is not None:
            body["field"] = self.field
        body.update({k: v for k, v in self.details.items() if v is not None})
        return body


class ConfigError(LoopmlError, ValueError):
    """loopml.yaml (or an argument) is invalid."""


class UsageError(LoopmlError, ValueError):
    """A command or API call was used wrongly."""


class NotFoundError(LoopmlError, LookupError):
    exit_code = 2
    http_status = 404


class ConflictError(LoopmlError, RuntimeError):
    """An optimistic-lock or state conflict: someone else changed the thing first."""

    exit_code = 1
    http_status = 409


class DataError(LoopmlError, ValueError):
    """Input data is missing, unreadable or does not match what is expected."""

    exit_code = 2
    http_status = 422


class ValidationError(DataError):
    """A request's rows do not match the model signature."""

    http_status = 422


class IntegrityError(LoopmlError, RuntimeError):
    """An artifact's bytes do not match the digest recorded for them."""

    exit_code = 1
    http_status = 500


class UnsafeArtifactError(LoopmlError, RuntimeError):
    """An artifact was refused because loading it could run untrusted code."""

    exit_code = 1
    http_status = 500


class SignatureError(IntegrityError):
    """A version's manifest is unsigned or wrongly signed while a public key is configured."""


class TrainingError(LoopmlError, RuntimeError):
    """The user's code (training function, data function, a project module) raised or returned
    something unusable (exit 3: a failure in code, not a verdict of the gates)."""

    exit_code = 3
    http_status = 500


class StoreVersionError(LoopmlError, RuntimeError):
    """The metadata store was written by a newer loopml."""

    exit_code = 2
    http_status = 500


class AuthError(LoopmlError, PermissionError):
    http_status = 401


class ForbiddenError(LoopmlError, PermissionError):
    http_status = 403


class RateLimitedError(LoopmlError, RuntimeError):
    http_status = 429


class UnavailableError(LoopmlError, RuntimeError):
    """No model can answer (for example every version of an endpoint is disabled)."""

    exit_code = 1
    http_status = 503


class BadRequestError(DataError):
    """The request body is not readable at all (for example not JSON)."""

    http_status = 400


class UnsupportedMediaTypeError(DataError):
    """The request's content type is not one the route reads."""

    http_status = 415


class PayloadTooLargeError(DataError):
    """The request body is over the configured size limit."""

    http_status = 413


class StorageError(LoopmlError, OSError):
    """A remote store (S3 or another fsspec backend) could not be reached or refused a call."""

    exit_code = 1
    http_status = 503
