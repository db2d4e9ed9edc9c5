"""Setup mode's web side: the wizard's URLs and QR code (appliance/app/setup.py runs the wizard)."""

from __future__ import annotations

import io

from appliance.net.interfaces import lan_addresses


def setup_urls(port: int, token: str, addresses: list[str] | None = None) -> list[str]:
    """One wizard URL per LAN address of this machine (loopback when there is none)."""
    addresses = addresses if addresses is not None else lan_addresses()
    hosts = [f"[{a}]" if ":" in a else a for a in addresses] or ["127.0.0.1"]
    return [f"http://{host}:{port}/setup?token={token}" for host in hosts]


def qr_svg(text: str) -> str:
    """An inline SVG QR code (segno), or "" if segno is missing."""
    try:
        import segno
    except ImportError:
        return ""
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="svg", scale=6, border=2, xmldecl=False, svgns=True,
                                     title=text, nl=False)
    return out.getvalue().decode()


__all__ = ["qr_svg", "setup_urls"]
