"""The LDAP client against a real slapd: search-then-bind over StartTLS and LDAPS, AD attribute names,
nested groups, profiles with a photo, and a clear message for each failure."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from appliance.config.model import LdapConfig
from appliance.directory.ldap import (
    DirectoryBindRefused,
    DirectoryTlsFailure,
    DirectoryUnreachable,
    LdapDirectory,
    Member,
)
from tests.directory.slapd import (
    BASE,
    GROUPS,
    PASSWORDS,
    PEOPLE,
    PHOTO,
    SERVICE_DN,
    SERVICE_PASSWORD,
    Slapd,
    make_ca,
)
from tests.integration.harness import free_port


def ldap_config(slapd: Slapd, **changes: object) -> LdapConfig:
    config = LdapConfig(enabled=True, uri=slapd.uri, starttls=True, ca_file=slapd.ca.ca, bind_dn=SERVICE_DN,
                        bind_password=SERVICE_PASSWORD, base=PEOPLE, user_filter="(objectClass=inetOrgPerson)",
                        user_attribute="uid", group_base=GROUPS, connect_timeout=2.0, timeout=5.0, pool_size=2)
    return dataclasses.replace(config, **changes)


async def test_search_then_bind_over_starttls(slapd: Slapd) -> None:
    directory = LdapDirectory(ldap_config(slapd))
    try:
        assert await directory.verify("alice", PASSWORDS["alice"]) == f"uid=alice,{PEOPLE}"
        assert await directory.verify("alice", "wrong password") is None
        assert await directory.verify("alice", "") is None  # never an anonymous bind
        assert await directory.verify("nobody", "x") is None
        assert await directory.verify("*", PASSWORDS["alice"]) is None  # filter characters are escaped
        assert directory.status.reachable is True and directory.status.logins == 1
        assert directory.status.failed_logins == 3
    finally:
        directory.close()


async def test_ldaps_and_active_directory_attribute_names(slapd: Slapd) -> None:
    by_sam = LdapDirectory(ldap_config(slapd, uri=slapd.ldaps_uri, user_attribute="sAMAccountName",
                                       user_filter="(objectClass=adAccount)"))
    by_upn = LdapDirectory(ldap_config(slapd, user_filter="(&(objectClass=adAccount)"
                                                          "(userPrincipalName={username}@corp.example.test))"))
    try:
        assert await by_sam.verify("bob", PASSWORDS["bob"]) == f"uid=bob,{PEOPLE}"  # sAMAccountName BOB
        assert await by_upn.verify("carol", PASSWORDS["carol"]) == f"uid=carol,{PEOPLE}"
        assert await by_upn.verify("carol", PASSWORDS["bob"]) is None
    finally:
        by_sam.close()
        by_upn.close()


async def test_profile_with_photo(slapd: Slapd) -> None:
    directory = LdapDirectory(ldap_config(slapd))
    try:
        alice = await directory.user("alice")
        assert alice is not None
        assert (alice.full_name, alice.given_name, alice.family_name) == ("Alice Liddell", "Alice", "Liddell")
        assert (alice.email, alice.phone) == ("alice@example.test", "+1 555 0100")
        assert alice.photo == PHOTO and alice.photo_type == "image/jpeg"
        bob = await directory.user("bob")
        assert bob is not None and bob.photo == b"" and bob.phone == ""
        assert await directory.user("nobody") is None
    finally:
        directory.close()


async def test_nested_groups_and_login_group(slapd: Slapd) -> None:
    directory = LdapDirectory(ldap_config(slapd))
    try:
        staff = await directory.members(f"cn=staff,{GROUPS}")  # staff > engineering > backend
        assert staff == {"alice": Member(f"uid=alice,{PEOPLE}", "Alice Liddell"),
                         "bob": Member(f"uid=bob,{PEOPLE}", "Bob Builder"),
                         "carol": Member(f"uid=carol,{PEOPLE}", "Carol Danvers")}
        assert set(await directory.members(f"cn=loop,{GROUPS}")) == {"dave"}  # contains itself: no hang
        assert [name for _dn, name in await directory.groups()] == ["backend", "engineering", "loop", "sales",
                                                                     "staff"]  # under group_base, by name
    finally:
        directory.close()
    only_engineering = LdapDirectory(ldap_config(slapd, login_group=f"cn=engineering,{GROUPS}"))
    try:
        assert await only_engineering.verify("bob", PASSWORDS["bob"]) is not None  # through backend
        assert await only_engineering.verify("carol", PASSWORDS["carol"]) is None  # sales only
    finally:
        only_engineering.close()


async def test_each_failure_has_its_message(slapd: Slapd, tmp_path: Path) -> None:
    unreachable = LdapDirectory(ldap_config(slapd, uri=f"ldap://127.0.0.1:{free_port()}"))
    with pytest.raises(DirectoryUnreachable, match="cannot be reached"):
        await unreachable.verify("alice", PASSWORDS["alice"])
    assert unreachable.status.reachable is False and "cannot be reached" in unreachable.status.last_error

    bad_bind = LdapDirectory(ldap_config(slapd, bind_password="not the password"))
    with pytest.raises(DirectoryBindRefused, match=r"refused the service account .*ldap\.bind_password"):
        await bad_bind.verify("alice", PASSWORDS["alice"])

    other_ca = make_ca(tmp_path / "other")  # a CA that did not sign the directory's certificate
    for uri in (slapd.uri, slapd.ldaps_uri):
        untrusted = LdapDirectory(ldap_config(slapd, uri=uri, ca_file=other_ca.ca))
        with pytest.raises(DirectoryTlsFailure, match=r"ldap\.ca_file"):
            await untrusted.verify("alice", PASSWORDS["alice"])
    wrong_name = LdapDirectory(ldap_config(slapd, uri=f"ldap://localhost:{slapd.port}"))  # not in the certificate
    with pytest.raises(DirectoryTlsFailure, match="names localhost"):
        await wrong_name.verify("alice", PASSWORDS["alice"])

    missing_base = LdapDirectory(ldap_config(slapd, base=f"ou=nowhere,{BASE}"))
    result = await missing_base.check("alice")
    assert not result.ok and "does not exist in the directory: check ldap.base" in result.error
    missing_base.close()


async def test_check_finds_one_user(slapd: Slapd) -> None:
    directory = LdapDirectory(ldap_config(slapd))
    result = await directory.check("dave")
    assert result.ok and result.user is not None and result.user.dn == f"uid=dave,{PEOPLE}"
    assert result.users_found == 5
    assert result.steps[0].endswith("(StartTLS)")
    assert directory.status.users_found == 5
    missing = await directory.check("zed")
    assert not missing.ok and "no user 'zed' found" in missing.error
    directory.close()
