"""The interface a client session writes through, and the stand-ins used while a session has no
connection (hibernated for resumption) or a connection has lost its session (taken over)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from appliance.xmpp.errors import StreamError
from appliance.xmpp.stream import C2SState

if TYPE_CHECKING:
    from appliance.core.c2s.session import ClientSession
    from appliance.xmpp.parser import Event


class Transport(Protocol):
    """What a session needs from the connection below it."""

    peer_ip: str
    secure: bool
    loopback: bool
    channel_bindings: dict[str, bytes]
    session: ClientSession  # resumption (XEP-0198) moves a transport to the session it resumes

    def write(self, data: bytes) -> None: ...

    def open_stream(self, from_: str, stream_id: str, to: str | None = None, version: str | None = "1.0") -> None:
        """Write our stream header (TCP) or its framing equivalent (WebSocket <open/>, BOSH)."""

    def close_stream(self) -> None:
        """Write our stream close (`</stream:stream>` or `<close/>`)."""

    def write_stream_error(self, error: StreamError) -> None:
        """Write a stream error in this transport's framing."""

    def buffered(self) -> int: ...

    async def start_tls(self) -> None: ...

    def can_start_tls(self) -> bool: ...

    def reset_parser(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def close(self) -> None: ...


class Orphan:
    """Stands in for the session behind a transport that was taken away from it (hibernation,
    resumption): whatever the transport still reports goes nowhere."""

    __slots__ = ("id",)
    state = C2SState.CLOSED

    def __init__(self, session_id: str) -> None:
        self.id = session_id

    def receive(self, new_events: list[Event]) -> None: ...

    def receive_error(self, error: StreamError) -> None: ...

    def touch(self) -> None: ...

    def connection_lost(self) -> None: ...

    def close_stream(self) -> None: ...

    def close(self, condition: str | None = None, text: str | None = None) -> None: ...

    def stream_error(self, error: StreamError) -> None: ...


class Detached:
    """The transport of a hibernated session: nothing is written anywhere (the SM queue keeps it)."""

    __slots__ = ()
    peer_ip = "-"
    secure = True
    loopback = False
    channel_bindings: dict[str, bytes] = {}  # never written

    @property
    def session(self) -> ClientSession:
        raise AttributeError("a detached transport has no session")

    @session.setter
    def session(self, value: object) -> None:
        pass

    def write(self, data: bytes) -> None: ...

    def open_stream(self, from_: str, stream_id: str, to: str | None = None, version: str | None = "1.0") -> None: ...

    def close_stream(self) -> None: ...

    def write_stream_error(self, error: StreamError) -> None: ...

    def buffered(self) -> int:
        return 0

    async def start_tls(self) -> None:
        raise StreamError.undefined_condition("no connection")

    def can_start_tls(self) -> bool:
        return False

    def reset_parser(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def close(self) -> None: ...


DETACHED = Detached()

__all__ = ["DETACHED", "Detached", "Orphan", "Transport"]
