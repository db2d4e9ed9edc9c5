"""Asking the running server to renew: ``parlour cert renew`` drops a request file the server watches.

Why a file in ``<state_dir>/acme/`` rather than a unix socket or a signal: the server already looks at
that folder every few seconds (to pick up certificates written by others), so no new listener has to
be opened, secured and kept alive; who may ask is decided by the folder's permissions, the same as who
may write the certificates themselves; it works the same on Linux, macOS and Windows (no AF_UNIX or
SIGHUP there); and a request left by a CLI run whose server is not running is seen and withdrawn by
that CLI run, never acted on by surprise later. The answer comes back through ``status.json``, which
carries the request's id.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from dataclasses import dataclass

from appliance.certs.acme.state import AcmeState, AcmeStatus

__all__ = ["RenewRequest", "take_request", "wait_for_answer", "wait_taken", "withdraw_if_untaken", "write_request"]

REQUEST_FILE = "renew-request.json"
POLL = 0.2


@dataclass(frozen=True, slots=True)
class RenewRequest:
    """One request: its id (echoed in the status that answers it) and whether to order regardless."""

    id: str
    force: bool


def write_request(state: AcmeState, *, force: bool) -> RenewRequest:
    request = RenewRequest(secrets.token_hex(8), force)
    state.write_json(state.dir / REQUEST_FILE, {"id": request.id, "force": request.force,
                                                "when": dt.datetime.now(dt.UTC).isoformat()})
    return request


def take_request(state: AcmeState) -> RenewRequest | None:
    """The pending request, removed from the folder (the server calls this); None when there is none."""
    path = state.dir / REQUEST_FILE
    data = state.read_json(path)
    try:
        path.unlink()
    except FileNotFoundError:
        return None
    if data is None or not isinstance(data.get("id"), str):
        return None
    return RenewRequest(data["id"], bool(data.get("force")))


def withdraw_if_untaken(state: AcmeState) -> bool:
    """Remove our request if no server took it; whether it was still there."""
    try:
        (state.dir / REQUEST_FILE).unlink()
    except FileNotFoundError:
        return False
    return True


async def wait_taken(state: AcmeState, timeout: float) -> bool:
    """Whether a server took the request (the file is gone) within ``timeout`` seconds."""
    path = state.dir / REQUEST_FILE
    try:
        async with asyncio.timeout(timeout):
            while path.exists():
                await asyncio.sleep(POLL)
    except TimeoutError:
        return False
    return True


async def wait_for_answer(state: AcmeState, request: RenewRequest, timeout: float) -> AcmeStatus | None:
    """The status that answers ``request``, or None after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                status = state.load_status()
                if status is not None and status.request == request.id:
                    return status
                await asyncio.sleep(POLL)
    except TimeoutError:
        return None

