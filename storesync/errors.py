"""The exception hierarchy.

::

    StoresyncError
    ├── InputError            bad input from a user or a caller: nothing was written
    │   └── ConflictError     it clashes with something that exists (a shop already added)
    ├── NotFoundError         an id that does not exist (or belongs to another account)
    ├── InvalidStateError     an operation the job's current status does not allow
    ├── LimitExceededError    an account is over one of its limits: try again later
    └── ProviderError         a call to Shopify or Klaviyo went wrong
        ├── RetryableError    try again later (5xx, timeouts, throttling, a spent budget)
        └── PermanentError    retrying cannot help (bad token, missing scope, frozen shop)

Messages are written for the person who can act on them: a store owner or an operator.
"""

from __future__ import annotations

from datetime import datetime


class StoresyncError(Exception):
    """Base class of every error storesync raises on purpose."""


class InputError(StoresyncError, ValueError):
    """The caller's input is invalid; the message says what is wrong."""


class ConflictError(InputError):
    """The input clashes with what exists (the API answers 409); nothing was written."""


class NotFoundError(StoresyncError, LookupError):
    """The thing asked for does not exist (or is not visible to the caller)."""


class InvalidStateError(StoresyncError):
    """The operation is not allowed in the object's current state."""


class LimitExceededError(StoresyncError):
    """An account is over a limit (queued syncs, API requests a minute, stores); nothing was
    written. ``retry_after`` is how many seconds to wait before trying again."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderError(StoresyncError):
    """A provider call failed."""

    def __init__(self, message: str, *, provider: str) -> None:
        super().__init__(message)
        self.provider = provider


class RetryableError(ProviderError):
    """A transient failure; ``retry_after`` (seconds) or ``retry_at`` hint when to try again."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        retry_after: float | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        super().__init__(message, provider=provider)
        self.retry_after = retry_after
        self.retry_at = retry_at


class PermanentError(ProviderError):
    """A failure that retrying cannot fix; the job fails at once with this message."""
