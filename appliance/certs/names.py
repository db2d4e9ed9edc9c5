"""Which names a certificate must carry: every hosted domain and the service domains it runs.

One function for the self-signed path and for ACME, so both certificates always cover the same names
(a missing ``conference.`` name is a classic reason clients refuse to join rooms).
"""

from __future__ import annotations

from appliance.config.model import Config, HostConfig

__all__ = ["hosted_names", "service_names"]


def hosted_names(config: Config) -> list[str]:
    """Each host followed by its service names (conference., upload., pubsub.), without duplicates."""
    names: list[str] = []
    for host in config.hosts:
        for name in (host.name, *service_names(host)):
            if name not in names:
                names.append(name)
    return names


def service_names(host: HostConfig) -> list[str]:
    """The service domains of ``host`` whose module is configured (its options exist) and not disabled."""
    disabled = set(host.modules.disabled)
    names: list[str] = []
    muc = getattr(host.modules, "muc", None)
    if "muc" not in disabled and muc is not None:
        names.append(f"{muc.subdomain}.{host.name}")
    upload = getattr(host.modules, "upload", None)
    if "upload" not in disabled and upload is not None:
        names.append(getattr(upload, "domain", "") or f"upload.{host.name}")
    if "pubsub" not in disabled and getattr(host.modules, "pubsub", None) is not None:
        names.append(f"pubsub.{host.name}")
    return names
