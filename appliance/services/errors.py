"""What a service raises when a request cannot be done: the message is shown to the administrator."""

from __future__ import annotations

import logging

from appliance.core.accounts import AccountExists

audit = logging.getLogger("appliance.admin")
audit.setLevel(logging.INFO)  # the audit trail is kept even when the log level is "warning"


class ServiceError(ValueError):
    """An administrative request cannot be done; the message says why, in the current language."""


class NotFound(ServiceError):
    """The account, invitation, token or room named does not exist."""


class Conflict(ServiceError):
    """The thing to create exists already."""


class NameTaken(Conflict, AccountExists):
    """The account name asked for is taken (or reserved); to modules, the core's AccountExists."""


class Refused(ServiceError):
    """A value (a password) is not acceptable; `reason` is the technical why, for the CLI."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


__all__ = ["Conflict", "NameTaken", "NotFound", "Refused", "ServiceError", "audit"]
