"""Where a remote XMPP server listens: SRV records (RFC 6120 §3.2, XEP-0368), A/AAAA, happy eyeballs.

`S2SResolver.targets(domain)` gives the (host, port, direct TLS) candidates in the order to try them:
`_xmpps-server._tcp` (direct TLS) and `_xmpp-server._tcp` (STARTTLS) merged by priority, weighted
random order within one priority (RFC 2782), direct TLS first on a tie (XEP-0368 §3); without any SRV
record the domain itself on 5269. A single "." target means the service is decidedly not offered.
`connect` then resolves each host to IPv6 and IPv4 addresses, interleaved, and races them with a short
head start for each (RFC 8305), the first connection to open wins.

The resolver is dnspython's asynchronous one with its own timeout; nameservers and a static map
(domain -> host:port, for tests and LANs without DNS) come from the [s2s] configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

log = logging.getLogger(__name__)

DEFAULT_PORT = 5269
HAPPY_EYEBALLS_DELAY = 0.25  # RFC 8305 §5: 250 ms before the next address gets its attempt
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Target:
    """One place to connect to: a host name (or address), a port, and whether TLS starts at once."""

    host: str
    port: int
    direct_tls: bool = False


class NoAddress(LookupError):
    """DNS gave no address for any target of the domain (it does not exist, or has no server)."""


class ServiceRefused(NoAddress):
    """The domain publishes "." as its only SRV target: it offers no server-to-server service."""


def parse_hostport(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """ "host", "host:port", "1.2.3.4:5", "[::1]:5", "::1" -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, default_port


def parse_static(entries: Sequence[str]) -> dict[str, tuple[str, int]]:
    """The configured static map: each entry "domain=host:port" (the port defaults to 5269)."""
    result: dict[str, tuple[str, int]] = {}
    for entry in entries:
        domain, _, target = entry.partition("=")
        result[domain.strip().lower().rstrip(".")] = parse_hostport(target)
    return result


def _nameserver(text: str) -> dns.nameserver.Do53Nameserver:
    host, port = parse_hostport(text, 53)
    return dns.nameserver.Do53Nameserver(host, port)


def order_srv(records: Sequence[tuple[int, int, Target]], rng: random.Random | None = None) -> list[Target]:
    """RFC 2782 ordering of (priority, weight, target): lowest priority first; within a priority a
    weighted random draw; direct TLS before STARTTLS at equal priority and weight (XEP-0368 §3)."""
    rng = rng or random.Random()
    ordered: list[Target] = []
    for priority in sorted({p for p, _, _ in records}):
        group = sorted((r for r in records if r[0] == priority), key=lambda r: (r[1], r[2].direct_tls))
        while group:
            total = sum(w for _, w, _ in group)
            pick = rng.uniform(0, total) if total else 0
            running = 0
            chosen = len(group) - 1
            # Zero-weight records sort first and so get a small chance only when nothing else is left
            # (RFC 2782: "entries with weight 0 should have a very small chance of being selected").
            for index, (_, weight, _) in enumerate(group):
                running += weight
                if total and running >= pick and weight:
                    chosen = index
                    break
            ordered.append(group.pop(chosen)[2])
    return ordered


class S2SResolver:
    """Finds the hosts and addresses of remote XMPP servers."""

    def __init__(
        self,
        *,
        nameservers: Sequence[str] = (),
        static: Mapping[str, tuple[str, int]] | None = None,
        timeout: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        self.static = dict(static or {})
        self.timeout = timeout
        self._rng = rng or random.Random()
        if nameservers:
            self._dns = dns.asyncresolver.Resolver(configure=False)
            self._dns.nameservers = [_nameserver(n) for n in nameservers]
        else:
            try:
                self._dns = dns.asyncresolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                log.warning("no system DNS resolver configured: only the static s2s map works")
                self._dns = dns.asyncresolver.Resolver(configure=False)
        self._dns.lifetime = timeout
        self._dns.timeout = timeout

    async def _query(self, name: str, rdtype: str) -> list[object]:
        try:
            answer = await self._dns.resolve(name, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
            return []
        except dns.exception.Timeout:
            log.info("DNS: %s %s timed out", name, rdtype)
            return []
        return list(answer)

    async def targets(self, domain: str) -> list[Target]:
        """Where `domain`'s XMPP server listens, best first; raises ServiceRefused for a "." SRV."""
        domain = domain.lower().rstrip(".")
        if domain in self.static:
            host, port = self.static[domain]
            return [Target(host, port)]
        tls, plain = await asyncio.gather(
            self._query(f"_xmpps-server._tcp.{domain}.", "SRV"), self._query(f"_xmpp-server._tcp.{domain}.", "SRV")
        )
        records: list[tuple[int, int, Target]] = []
        for direct, answers in ((True, tls), (False, plain)):
            for rr in answers:
                target = str(rr.target).rstrip(".")  # type: ignore[attr-defined]
                if target:
                    records.append((rr.priority, rr.weight, Target(target, rr.port, direct)))  # type: ignore[attr-defined]
        if not records:
            if plain and all(str(rr.target) == "." for rr in plain):  # type: ignore[attr-defined]
                raise ServiceRefused(domain)
            return [Target(domain, DEFAULT_PORT)]
        return order_srv(records, self._rng)

    async def addresses(self, host: str) -> list[str]:
        """IPv6 and IPv4 addresses of `host`, interleaved (IPv6 first, RFC 8305 §4)."""
        try:
            ipaddress.ip_address(host)
            return [host]
        except ValueError:
            pass
        if host.lower().rstrip(".") in ("localhost",):
            return ["::1", "127.0.0.1"]
        six, four = await asyncio.gather(self._query(host + ".", "AAAA"), self._query(host + ".", "A"))
        return interleave([str(a) for a in six], [str(a) for a in four])


def interleave(first: Sequence[str], second: Sequence[str]) -> list[str]:
    """first[0], second[0], first[1], second[1], ... then whatever is left."""
    result: list[str] = []
    for index in range(max(len(first), len(second))):
        result += [seq[index] for seq in (first, second) if index < len(seq)]
    return result


async def race(
    attempts: Sequence[Callable[[], Awaitable[T]]], *, delay: float = HAPPY_EYEBALLS_DELAY
) -> T:
    """Start the attempts one after another, each `delay` after the previous (or at once when it
    failed); the first to succeed wins and the others are cancelled. Raises the last error if all fail."""
    if not attempts:
        raise OSError("no addresses to connect to")
    running: set[asyncio.Task[T]] = set()
    errors: list[BaseException] = []
    pending = list(attempts)
    try:
        while pending or running:
            if pending:
                running.add(asyncio.ensure_future(pending.pop(0)()))
            done, _ = await asyncio.wait(
                running, timeout=delay if pending else None, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                running.discard(task)
                if task.exception() is None:
                    return task.result()
                errors.append(task.exception())  # type: ignore[arg-type]
        raise errors[-1] if errors else OSError("no connection")
    finally:
        for task in running:
            task.cancel()
        for task in running:
            with contextlib.suppress(BaseException):
                await task


@dataclass(frozen=True, slots=True)
class Connected:
    """An open TCP connection to a remote server and the target it reached."""

    sock: socket.socket
    target: Target
    address: str


async def connect(resolver: S2SResolver, domain: str, *, timeout: float) -> Connected:
    """Open a TCP connection to `domain`'s server: each SRV target in turn, each one's addresses raced
    (happy eyeballs), `timeout` per target. Raises NoAddress (ServiceRefused: a "." SRV) when DNS has
    no address at all, OSError when no address answers."""
    loop = asyncio.get_running_loop()
    last: BaseException = NoAddress(f"{domain}: no address")
    for target in await resolver.targets(domain):
        addresses = await resolver.addresses(target.host)
        if not addresses:
            continue

        def attempt(address: str, port: int = target.port) -> Callable[[], Awaitable[tuple[socket.socket, str]]]:
            async def run() -> tuple[socket.socket, str]:
                family = socket.AF_INET6 if ":" in address else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setblocking(False)
                try:
                    await loop.sock_connect(sock, (address, port))
                except BaseException:
                    sock.close()
                    raise
                return sock, address
            return run

        try:
            async with asyncio.timeout(timeout):
                sock, address = await race([attempt(a) for a in addresses])
            return Connected(sock, target, address)
        except (OSError, TimeoutError) as exc:
            log.info("s2s: %s (%s:%s) unreachable: %s", domain, target.host, target.port, exc or "timeout")
            last = exc
    raise last if isinstance(last, OSError | NoAddress) else OSError(str(last))
