"""[ldap]: defaults, what it needs when enabled, and checked URIs and filters."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from appliance.catalog import parse_config
from appliance.config import ConfigError

HOST = '[hosts."example.org"]\n'


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent(text) + HOST, "parlour.toml", base_dir=Path("/etc/parlour"))
    return caught.value.problems


def test_off_by_default_and_read_when_written() -> None:
    assert not parse_config(HOST, "parlour.toml").ldap.serves("example.org")
    config = parse_config(textwrap.dedent("""\
        [ldap]
        enabled = true
        uri = "ldaps://dc1.example.org:636/"
        ca_file = "corp-ca.pem"
        base = "OU=Staff,DC=example,DC=org"
        user_attribute = "sAMAccountName"
        user_filter = "(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"
        active_directory = true
        hosts = ["example.org"]
        """) + HOST, "parlour.toml", base_dir=Path("/etc/parlour"))
    ldap = config.ldap
    assert ldap.uri == "ldaps://dc1.example.org:636" and ldap.ca_file == Path("/etc/parlour/corp-ca.pem")
    assert ldap.serves("example.org") and not ldap.serves("other.example")


def test_enabled_needs_uri_and_base_and_values_are_checked() -> None:
    assert problems("[ldap]\nenabled = true\n") == [
        "parlour.toml:2: ldap.enabled = true: ldap.uri must be set too",
        "parlour.toml:2: ldap.enabled = true: ldap.base must be set too",
    ]
    found = problems('[ldap]\nuri = "http://dc1"\nuser_filter = "(uid=x"\n')
    assert found[0].startswith('parlour.toml:2: ldap.uri = "http://dc1": expected an LDAP URI')
    assert found[1].startswith('parlour.toml:3: ldap.user_filter = "(uid=x": expected an LDAP filter')
