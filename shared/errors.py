"""The platform's error tree and its one retry predicate.

Every failure is either worth retrying or not, and the handler treats the two differently::

    PlatformError
    ├── SettingsError         the environment does not describe a usable configuration
    ├── DeclarationError      shared/platform.yaml or an environment name is not usable
    ├── PermanentError        retrying cannot help: log it, acknowledge the message
    │   ├── MalformedMessage  a message that does not match its topic's contract
    │   ├── InvalidRequest    well-formed, but asks for something impossible (bad identifier, ...)
    │   ├── SourceNotFound    the table, column or object named does not exist
    │   └── RunFailed         a followed fetch run ended failed (stage and reason)
    └── TransientError        the world may change: raise, so Pub/Sub redelivers with backoff
        └── RunStalled        a followed fetch run did not complete in time

Errors raised by the Google client libraries are classified by :func:`is_transient`.
"""

from __future__ import annotations

from google.api_core import exceptions as gexc


class PlatformError(Exception):
    """Base of every error the platform raises on purpose."""


class PermanentError(PlatformError):
    """Retrying will not fix this; the message is acknowledged after logging."""


class MalformedMessage(PermanentError):
    """A message that does not match its topic's contract; ``field`` names the culprit."""

    def __init__(self, topic: str, field: str, reason: str) -> None:
        self.topic = topic
        self.field = field
        self.reason = reason
        super().__init__(f"malformed {topic} message: field {field!r}: {reason}")


class InvalidRequest(PermanentError):
    """A well-formed request that cannot be carried out as asked."""


class SourceNotFound(PermanentError):
    """The table, column or object a request names does not exist."""


class RunFailed(PermanentError):
    """A followed fetch run ended failed; the message names the stage and the reason."""


class TransientError(PlatformError):
    """Worth retrying later: quota, unavailability, a race with another worker."""


class RunStalled(TransientError):
    """A published run did not complete in time (or never planned); the message says which."""


# Status codes Google APIs use for "slow down" or "try again": 429, 500, 502, 503, 504 and the
# gRPC equivalents. Anything else from the API is a permanent answer.
_TRANSIENT_API_ERRORS: tuple[type[BaseException], ...] = (
    gexc.TooManyRequests,
    gexc.ResourceExhausted,
    gexc.ServiceUnavailable,
    gexc.InternalServerError,
    gexc.BadGateway,
    gexc.GatewayTimeout,
    gexc.DeadlineExceeded,
    gexc.Aborted,
)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth retrying: the single retry predicate of the platform."""
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, PermanentError):
        return False
    if isinstance(exc, _TRANSIENT_API_ERRORS):
        return True
    return isinstance(exc, ConnectionError | TimeoutError)
