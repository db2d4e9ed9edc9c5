"""Pre-flight checks per name before ordering: does it resolve, to this machine, is the port reachable.

An order that fails validation still counts against the authority's rate limits, so names that cannot
pass are caught here first and explained (``CertProblem``). The reachability probe publishes a random
token through the same responder the real challenge uses and fetches it through the name, so it tests
the whole path: DNS, firewall, port forwarding, reverse proxy (webroot) and Parlour's own listener.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiohttp

from appliance.certs.acme.challenges import WELL_KNOWN, ChallengeResponder
from appliance.certs.acme.problems import CertProblem

__all__ = ["Preflight", "Resolver", "is_local_address", "resolver_for"]

log = logging.getLogger(__name__)

Resolver = Callable[[str], Awaitable[list[str]]]
PROBE_TIMEOUT = 10.0


def resolver_for(nameservers: Sequence[str]) -> Resolver:
    """Resolve with ``nameservers`` ("ip:port") through dnspython, or the system resolver when empty."""
    if not nameservers:
        return _system_resolve
    import dns.asyncresolver
    import dns.nameserver

    resolver = dns.asyncresolver.Resolver(configure=False)
    servers: list[dns.nameserver.Nameserver] = []
    for server in nameservers:
        host, _, port = server.rpartition(":")
        servers.append(dns.nameserver.Do53Nameserver(host.strip("[]"), int(port)))
    resolver.nameservers = servers
    resolver.lifetime = 5.0

    async def resolve(name: str) -> list[str]:
        import dns.exception
        import dns.resolver

        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await resolver.resolve(name, rdtype)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers,
                    dns.exception.Timeout):
                continue
            found.extend(record.to_text() for record in answer)
        return found

    return resolve


async def _system_resolve(name: str) -> list[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    out: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in out:
            out.append(address)
    return out


def is_local_address(address: str) -> bool:
    """Whether ``address`` belongs to one of this machine's interfaces (binding to it succeeds)."""
    ip = ipaddress.ip_address(address)
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((address, 0))
    except OSError as exc:
        # Any other error (permission, ...) means the address exists here.
        return exc.errno not in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT)
    return True


@dataclass(frozen=True, slots=True)
class Preflight:
    """The checks for one challenge type: ``challenge`` validated on ``port``."""

    responder: ChallengeResponder
    resolve: Resolver
    challenge: str = "http-01"
    port: int = 80
    tls_ports: tuple[int, ...] = ()  # Parlour's TLS listeners (for TLS-ALPN-01)

    async def check(self, names: Sequence[str]) -> list[CertProblem]:
        """Every problem found for ``names`` (errors and warnings), in name order."""
        problems: list[CertProblem] = []
        if self.challenge == "tls-alpn-01" and self.port not in self.tls_ports:
            problems.append(CertProblem.no_tls_listener(self.port))
        results = await asyncio.gather(*(self._check_name(name) for name in names))
        for found in results:
            problems.extend(found)
        for problem in problems:
            log.log(logging.WARNING if problem.severity == "error" else logging.INFO, "Certificate check: %s", problem)
        return problems

    async def _check_name(self, name: str) -> list[CertProblem]:
        addresses = await self.resolve(name)
        if not addresses:
            return [CertProblem.does_not_resolve(name)]
        problems: list[CertProblem] = []
        foreign = [a for a in addresses if not is_local_address(a)]
        if foreign:
            problems.append(CertProblem.not_this_machine(name, foreign))
        for address in addresses:
            reason = await (self._probe_http(name, address) if self.challenge == "http-01"
                            else self._probe_tcp(address))
            if reason == "wrong":
                problems.append(CertProblem.wrong_responder(name, self.port))
                break
            if reason is not None:
                local = address not in foreign
                problems.append(CertProblem.port_unreachable(name, self.port, f"{address}: {reason}", local=local))
                break
        return problems

    async def _probe_http(self, name: str, address: str) -> str | None:
        """None when the probe token comes back through ``address``; "wrong" or why not otherwise."""
        token, value = self.responder.publish_probe()
        host = f"[{address}]" if ":" in address else address
        url = f"http://{host}:{self.port}{WELL_KNOWN}{token}"
        try:
            timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
            async with aiohttp.ClientSession(timeout=timeout) as session, session.get(
                url, headers={"Host": name if self.port == 80 else f"{name}:{self.port}"}, allow_redirects=False
            ) as response:
                body = await response.text(errors="replace")
                return None if response.status == 200 and body.strip() == value else "wrong"
        except (aiohttp.ClientError, OSError) as exc:
            return _reason(exc)
        except TimeoutError:
            return f"no answer within {PROBE_TIMEOUT:.0f} seconds"
        finally:
            self.responder.withdraw_http(token)

    async def _probe_tcp(self, address: str) -> str | None:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                _, writer = await asyncio.open_connection(address, self.port)
        except TimeoutError:
            return f"no answer within {PROBE_TIMEOUT:.0f} seconds"
        except OSError as exc:
            return _reason(exc)
        writer.close()
        return None


def _reason(exc: BaseException) -> str:
    """A short human reason for a failed connection."""
    cause: BaseException | None = getattr(exc, "os_error", exc)  # aiohttp wraps the socket error
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) == errno.ECONNREFUSED:
            return "connection refused: nothing listens there"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__
