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
    """The service domains of ``host``'s enabled modules (each module's options say which)."""
    return host.modules.service_domains(host.name)
