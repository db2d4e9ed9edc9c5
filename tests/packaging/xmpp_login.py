"""Minimal XMPP client for the package tests: STARTTLS, then SASL PLAIN, then resource binding.

Standard library only, so it runs with any python3 (e.g. in a container's network namespace via
`nsenter -t PID -n python3 tests/packaging/xmpp_login.py ...`). The certificate is not verified: a
fresh install has a self-signed one.

    python3 xmpp_login.py HOST PORT DOMAIN [USER PASSWORD]

Without USER it only checks that the server answers with an XMPP stream header. Exit 0 on success;
prints what it saw.
"""

from __future__ import annotations

import base64
import re
import socket
import ssl
import sys


def stream_header(domain: str) -> bytes:
    return (f"<?xml version='1.0'?><stream:stream to='{domain}' xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>").encode()


def read_until(sock: socket.socket | ssl.SSLSocket, pattern: str, limit: float = 10.0) -> str:
    """Read until the text received so far matches `pattern` (a regex); fails on EOF or timeout."""
    sock.settimeout(limit)
    data = b""
    while not re.search(pattern, data.decode(errors="replace"), re.S):
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit(f"connection closed; received so far: {data[:500]!r}")
        data += chunk
    return data.decode(errors="replace")


def main(argv: list[str]) -> int:
    host, port, domain = argv[0], int(argv[1]), argv[2]
    user, password = (argv[3], argv[4]) if len(argv) >= 5 else (None, None)
    sock: socket.socket | ssl.SSLSocket = socket.create_connection((host, port), timeout=10)
    sock.sendall(stream_header(domain))
    text = read_until(sock, r"</stream:features>")
    header = re.search(r"<stream:stream[^>]*>", text)
    print(f"stream header: {header.group(0) if header else text[:200]}")
    if user is None:
        return 0 if header else 1
    if "urn:ietf:params:xml:ns:xmpp-tls" not in text:
        raise SystemExit(f"no STARTTLS offered: {text}")
    sock.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    read_until(sock, r"<proceed")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    sock = context.wrap_socket(sock, server_hostname=domain)
    print(f"tls: {sock.version()} {sock.cipher()[0]}")
    sock.sendall(stream_header(domain))
    text = read_until(sock, r"</stream:features>")
    if "<mechanism>PLAIN</mechanism>" not in text:
        raise SystemExit(f"no PLAIN offered inside TLS: {text}")
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    sock.sendall(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>".encode())
    text = read_until(sock, r"<success|<failure.*?</failure>")
    if "<success" not in text:
        raise SystemExit(f"login refused: {text}")
    sock.sendall(stream_header(domain))
    read_until(sock, r"</stream:features>")
    sock.sendall(b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                 b"<resource>package-test</resource></bind></iq>")
    text = read_until(sock, r"<jid>[^<]*</jid>|type=.error.")
    jid = re.search(r"<jid>([^<]*)</jid>", text)
    if not jid:
        raise SystemExit(f"bind failed: {text}")
    print(f"logged in as {jid.group(1)}")
    sock.sendall(b"</stream:stream>")
    sock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
