"""/metrics in the Prometheus text format: sessions, stanzas, auth failures, accounts, database size,
server-to-server connections.

Open to loopback (a local Prometheus or node exporter); from elsewhere it needs an API bearer token.
"""

from __future__ import annotations

from aiohttp import web

from appliance.net.addresses import peer_is_loopback
from appliance.web.admin.api import bearer_admin
from appliance.web.keys import ADMIN

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{labels} {value:g}" if isinstance(value, float) else f"{name}{labels} {value}"
              for labels, value in samples]
    return lines


async def metrics(request: web.Request) -> web.Response:
    if not peer_is_loopback(request.remote or ""):
        _actor, denied = bearer_admin(request)
        if denied is not None:
            return denied
    status = request.app[ADMIN].status
    stats = status.stats
    per_host = [(h, status.sessions.count_host(h)) for h in status.hosts]
    counts = [(h, await status.accounts.count(h)) for h in status.hosts]
    lines: list[str] = []
    lines += _metric("parlour_sessions", "gauge", "Bound client sessions.",
                     [(f'{{host="{h}"}}', n) for h, n in per_host])
    lines += _metric("parlour_accounts", "gauge", "Registered accounts.", [(f'{{host="{h}"}}', n) for h, n in counts])
    lines += _metric("parlour_stanzas_in_total", "counter", "Stanzas received from clients.",
                     [("", stats.get("stanzas_in", 0))])
    lines += _metric("parlour_stanzas_out_total", "counter", "Stanzas sent to clients.",
                     [("", stats.get("stanzas_out", 0))])
    lines += _metric("parlour_messages_in_total", "counter", "Message stanzas received from clients.",
                     [("", stats.get("messages_in", 0))])
    lines += _metric("parlour_logins_total", "counter", "Successful client logins.",
                     [("", stats.get("logins", 0))])
    lines += _metric("parlour_auth_failures_total", "counter", "Failed client logins.",
                     [("", stats.get("auth_failures", 0))])
    lines += _metric("parlour_console_login_failures_total", "counter",
                     "Refused console logins: a wrong address or password, or a throttled source.",
                     [(f'{{reason="{r}"}}', stats.get(f"console_login_failures_{r}", 0))
                      for r in ("password", "throttled")])
    lines += _metric("parlour_database_size_bytes", "gauge",
                     "Size of the database: the SQLite file and its WAL, or PostgreSQL's pg_database_size.",
                     [("", await status.database_size())])
    lines += _metric("parlour_uptime_seconds", "gauge", "Seconds since the server started.",
                     [("", round(status.uptime(), 3))])
    lines += _s2s_metrics(request, stats)
    for cert in status.certificates():
        lines += _metric("parlour_certificate_expiry_timestamp_seconds", "gauge", "When a certificate expires.",
                         [(f'{{name="{cert.names[0] if cert.names else cert.subject}"}}', cert.not_after.timestamp())])
    lines += _ocsp_metrics(request)
    return web.Response(text="\n".join(lines) + "\n", headers={"Content-Type": CONTENT_TYPE})


def _ocsp_metrics(request: web.Request) -> list[str]:
    """OCSP stapling: each certificate's status (1 on its current one), and responder requests."""
    desk = request.app[ADMIN].certificates
    samples = [(f'{{name="{r.names[0] if r.names else ""}",status="{r.status}"}}', 1) for r in desk.ocsp_report()]
    lines = _metric("parlour_ocsp_status", "gauge", "OCSP status of a certificate that names a responder.", samples)
    fetches, failures = desk.ocsp_requests()
    lines += _metric("parlour_ocsp_requests_total", "counter", "Requests to OCSP responders.", [("", fetches)])
    lines += _metric("parlour_ocsp_failures_total", "counter", "OCSP requests that brought no usable response.",
                     [("", failures)])
    return lines


def _s2s_metrics(request: web.Request, stats: dict[str, int]) -> list[str]:
    """Server-to-server: live connections and waiting stanzas (gauges), and the totals since start."""
    links = request.app[ADMIN].federation.links()
    live = [link.direction for link in links if link.state == "connected"]
    lines = _metric("parlour_s2s_connections", "gauge", "Live connections to other servers.",
                    [(f'{{direction="{d}"}}', live.count(d)) for d in ("in", "out")])
    lines += _metric("parlour_s2s_queued_stanzas", "gauge", "Stanzas waiting for a connection to another server.",
                     [("", sum(link.queued for link in links))])
    lines += _metric("parlour_s2s_connections_opened_total", "counter", "Connections to or from other servers.",
                     [(f'{{direction="{d}"}}', stats.get(f"s2s_connections_{d}", 0)) for d in ("in", "out")])
    lines += _metric("parlour_s2s_stanzas_total", "counter", "Stanzas received from and sent to other servers.",
                     [(f'{{direction="{d}"}}', stats.get(f"s2s_stanzas_{d}", 0)) for d in ("in", "out")])
    lines += _metric("parlour_s2s_bounces_total", "counter",
                     "Stanzas returned to their senders because another server could not be reached.",
                     [("", stats.get("s2s_bounces", 0))])
    lines += _metric("parlour_s2s_dialback_failures_total", "counter",
                     "Server Dialback keys that did not verify, ours or theirs.",
                     [("", stats.get("s2s_dialback_failures", 0))])
    return lines


def setup(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)


__all__ = ["setup"]
