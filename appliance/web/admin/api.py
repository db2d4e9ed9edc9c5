"""The JSON API under /api/v1: the console's operations for scripts (bearer tokens made in the console).

Documented in docs/api.md. Errors are `{"error": "..."}` with 400, 401, 403 or 404.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from appliance.services import Services
from appliance.services.errors import NotFound, ServiceError
from appliance.services.invitations import InvitationTerms
from appliance.web.keys import ADMIN

Endpoint = Callable[[web.Request, Services, str], Awaitable[Any]]


def _error(status: int, text: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="parlour"'} if status == 401 else None
    return web.json_response({"error": text}, status=status, headers=headers)


def bearer_admin(request: web.Request) -> tuple[str | None, web.Response | None]:
    """The administrator behind the request's bearer token, or the error response saying why not."""
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None, _error(401, "missing bearer token: send 'Authorization: Bearer <token>' with a token "
                                 "created in the admin console (API tokens page)")
    owner, why = request.app[ADMIN].tokens.owner(secret.strip())
    if owner is None:
        return None, _error(401 if "unknown" in why else 403, why)
    return owner, None


def endpoint(handler: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def wrapper(request: web.Request) -> web.StreamResponse:
        actor, denied = bearer_admin(request)
        if denied is not None:
            return denied
        assert actor is not None
        try:
            result = await handler(request, request.app[ADMIN], actor)
        except ServiceError as exc:
            return _error(404 if isinstance(exc, NotFound) else 400, str(exc))
        if isinstance(result, web.StreamResponse):
            return result
        return web.json_response(result, dumps=lambda o: json.dumps(o, default=_plain))

    return wrapper


def _plain(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[attr-defined]
    return str(value)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise ServiceError("the request body must be a JSON object") from None
    if not isinstance(data, dict):
        raise ServiceError("the request body must be a JSON object")
    return data


@endpoint
async def status(_request: web.Request, s: Services, _actor: str) -> Any:
    st = await s.status.status()
    return {
        "version": st.version, "uptime": round(st.uptime, 1), "sessions": st.sessions, "accounts": st.accounts,
        "messages_today": st.messages_today, "database_size": st.database_size, "hosts": list(st.hosts),
        "certificates": [{"names": list(c.names), "issuer": c.issuer, "not_after": c.not_after.isoformat(),
                          "self_signed": c.self_signed} for c in st.certificates],
        "update": {"installed": st.update.installed, "available": st.update.candidate,
                   "command": st.update.command} if st.update is not None else None,
    }


@endpoint
async def cluster(_request: web.Request, s: Services, _actor: str) -> Any:
    """The nodes of the cluster (an empty list and enabled false on a standalone server)."""
    nodes = await s.cluster.nodes()
    return {"enabled": s.cluster.enabled, "nodes": [dataclasses.asdict(n) for n in nodes]}


@endpoint
async def list_users(request: web.Request, s: Services, _actor: str) -> Any:
    return {"users": await s.accounts.users(request.query.get("q", ""), request.query.get("host"))}


@endpoint
async def create_user(request: web.Request, s: Services, actor: str) -> Any:
    body = await _body(request)
    jid = await s.accounts.create(actor, str(body.get("jid", "")), str(body.get("password", "")))
    return web.json_response({"jid": jid}, status=201)


@endpoint
async def delete_user(request: web.Request, s: Services, actor: str) -> Any:
    await s.accounts.delete(actor, request.match_info["jid"])
    return {"deleted": request.match_info["jid"]}


@endpoint
async def set_password(request: web.Request, s: Services, actor: str) -> Any:
    body = await _body(request)
    await s.accounts.reset_password(actor, request.match_info["jid"], str(body.get("password", "")))
    return {"changed": request.match_info["jid"]}


@endpoint
async def disconnect(request: web.Request, s: Services, actor: str) -> Any:
    return {"disconnected": await s.accounts.disconnect(actor, request.match_info["jid"])}


@endpoint
async def sessions(_request: web.Request, s: Services, _actor: str) -> Any:
    return {"sessions": s.accounts.sessions()}


@endpoint
async def activity(request: web.Request, s: Services, _actor: str) -> Any:
    """The dashboard's figures: ?range=day (24 hours, default) or week (7 days)."""
    week = request.query.get("range") == "week"
    points = s.activity.days(7) if week else s.activity.series(24)
    return {"range": "week" if week else "day", "unit": "day" if week else "hour", "points": points}


def _invitation(record: Any) -> dict[str, Any]:
    return {"id": record.id, "host": record.host, "creator": record.creator, "created": record.created,
            # used_by: the first account made (as before multi-use links); accounts: all of them
            "expires": record.expires, "used_by": next(iter(record.used_by), None), "accounts": list(record.used_by),
            "uses": record.uses,
            "max_uses": record.max_uses, "contact": record.inviter or None, "groups": list(record.groups),
            "username": record.username or None, "valid": record.valid(time.time())}


@endpoint
async def list_invitations(_request: web.Request, s: Services, _actor: str) -> Any:
    return {"invitations": [_invitation(i) for i in await s.invitations.list()]}


@endpoint
async def create_invitation(request: web.Request, s: Services, actor: str) -> Any:
    body = await _body(request) if request.can_read_body else {}
    try:
        lifetime = body.get("lifetime")
        terms = InvitationTerms(uses=int(body.get("uses", 1)), lifetime=None if lifetime is None else float(lifetime),
                                contact=str(body.get("contact") or ""), groups=tuple(map(str, body.get("groups", ()))),
                                username=str(body.get("username") or ""))
    except (TypeError, ValueError):
        raise ServiceError("uses and lifetime (seconds) must be numbers, groups a list of names") from None
    token, record = await s.invitations.create(actor, body.get("host"), terms=terms)
    return web.json_response({**_invitation(record), "url": s.invitations.link(record, token),
                              "uri": s.invitations.uri(record, token)}, status=201)


@endpoint
async def revoke_invitation(request: web.Request, s: Services, actor: str) -> Any:
    await s.invitations.revoke(actor, request.match_info["id"])
    return {"revoked": request.match_info["id"]}


@endpoint
async def get_settings(_request: web.Request, s: Services, _actor: str) -> Any:
    return {"settings": {setting.name: value for setting, value in s.settings.current()}}


@endpoint
async def patch_settings(request: web.Request, s: Services, actor: str) -> Any:
    body = await _body(request)
    restart = await s.settings.apply(actor, body)
    return {"applied": sorted(body), "restart_required": restart}


@endpoint
async def logs(request: web.Request, s: Services, _actor: str) -> Any:
    try:
        limit = max(1, min(2000, int(request.query.get("limit", "200"))))
    except ValueError:
        raise ServiceError("limit must be a number") from None
    lines = s.status.logs(request.query.get("q", ""), request.query.get("level", ""), limit)
    return {"lines": [{"time": line.time, "level": line.level, "logger": line.logger, "message": line.message}
                      for line in lines]}


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/status", status)
    r.add_get("/api/v1/cluster", cluster)
    r.add_get("/api/v1/users", list_users)
    r.add_post("/api/v1/users", create_user)
    r.add_delete("/api/v1/users/{jid}", delete_user)
    r.add_put("/api/v1/users/{jid}/password", set_password)
    r.add_post("/api/v1/users/{jid}/disconnect", disconnect)
    r.add_get("/api/v1/sessions", sessions)
    r.add_get("/api/v1/activity", activity)
    r.add_get("/api/v1/invitations", list_invitations)
    r.add_post("/api/v1/invitations", create_invitation)
    r.add_delete("/api/v1/invitations/{id}", revoke_invitation)
    r.add_get("/api/v1/settings", get_settings)
    r.add_patch("/api/v1/settings", patch_settings)
    r.add_get("/api/v1/logs", logs)


__all__ = ["bearer_admin", "setup"]
