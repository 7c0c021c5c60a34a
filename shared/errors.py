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

Errors raised by the Google client libraries are classified by one table: :func:`is_transient`
(worth retrying now) and :func:`is_permanent` (a message that failed so is acknowledged, not
redelivered) are its two readings.
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
    # 4xx answers a retry can change: races our code resolves itself (a create-only write or
    # a job id another delivery won). A 408 has no class of its own (see is_transient).
    gexc.Conflict,
    gexc.PreconditionFailed,
)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth retrying: the single retry predicate of the platform."""
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, PermanentError):
        return False
    if isinstance(exc, _TRANSIENT_API_ERRORS):
        return True
    if isinstance(exc, gexc.GoogleAPICallError) and exc.code == 408:
        return True
    return isinstance(exc, ConnectionError | TimeoutError)


def is_permanent(exc: BaseException, *, propagating: bool = False) -> bool:
    """Whether a delivery that raised ``exc`` must be acknowledged rather than redelivered:
    our own permanent errors, and a Google API's 4xx that a retry cannot change (bad SQL, a
    missing bucket, a denied permission). Anything else (a bug included) is redelivered until
    the dead-letter policy takes it. While IAM grants may still be ``propagating`` (the
    message is younger than the declared window), a 403 is not permanent."""
    if isinstance(exc, PermanentError):
        return True
    if propagating and isinstance(exc, gexc.Forbidden):
        return False
    return isinstance(exc, gexc.ClientError) and not is_transient(exc)
