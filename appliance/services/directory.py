"""The company directory as administrators see it (console, wizard, API): is it answering, how many users,
what went wrong last, and the live "test the connection and find one user" check."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from appliance.config.model import LdapConfig
from appliance.config.spec import check_ldap_filter, check_ldap_uri
from appliance.directory.ldap import CheckResult, LdapDirectory, describe
from appliance.services.errors import ServiceError, audit
from appliance.util.i18n import _

__all__ = ["AD_USER_FILTER", "CheckResult", "DirectoryDesk", "DirectoryView", "directory_settings"]


@dataclass(frozen=True, slots=True)
class DirectoryView:
    """The directory's state for the console's page and the API."""

    enabled: bool
    uri: str = ""
    base: str = ""
    reachable: bool | None = None  # None: not tried since the server started
    checked_at: float = 0.0
    users_found: int | None = None
    last_error: str = ""
    last_error_at: float = 0.0
    logins: int = 0
    failed_logins: int = 0


AD_USER_FILTER = "(&(objectClass=user)(objectCategory=person))"


def directory_settings(*, uri: str, starttls: bool, ca_file: Path | None, bind_dn: str, bind_password: str,
                       base: str, active_directory: bool = False, user_attribute: str = "",
                       user_filter: str = "") -> LdapConfig:
    """[ldap] settings from a form (the wizard's), checked like the config loader checks them; Active
    Directory gets its conventions (sAMAccountName, person objects, nested groups in one search)."""
    try:
        uri = check_ldap_uri(uri)
    except ValueError:
        raise ServiceError(_("%(uri)s is not an LDAP address like ldap://dc1.example.org or "
                             "ldaps://dc1.example.org:636.", uri=uri or '""')) from None
    if not uri:
        raise ServiceError(_("Enter the address of the directory server."))
    if not base.strip():
        raise ServiceError(_("Enter where the users are (the base DN), e.g. ou=people,dc=example,dc=org."))
    defaults = LdapConfig()
    if active_directory:
        defaults = replace(defaults, user_attribute="sAMAccountName", user_filter=AD_USER_FILTER, active_directory=True)
    try:
        user_filter = check_ldap_filter(user_filter) if user_filter.strip() else defaults.user_filter
    except ValueError:
        raise ServiceError(_("%(filter)s is not an LDAP filter in parentheses.", filter=user_filter)) from None
    return replace(defaults, enabled=True, uri=uri, starttls=starttls, ca_file=ca_file, bind_dn=bind_dn.strip(),
                   bind_password=bind_password, base=base.strip(), user_filter=user_filter,
                   user_attribute=user_attribute.strip() or defaults.user_attribute)


class DirectoryDesk:
    """The running server's directory (None when [ldap] is off), and checks of settings not yet saved."""

    def __init__(self, directory: LdapDirectory | None) -> None:
        self.directory = directory

    def status(self) -> DirectoryView:
        directory = self.directory
        if directory is None:
            return DirectoryView(enabled=False)
        s = directory.status
        return DirectoryView(True, directory.config.uri, directory.config.base, s.reachable, s.checked_at,
                             s.users_found, s.last_error, s.last_error_at, s.logins, s.failed_logins)

    async def check(self, actor: str, username: str = "") -> CheckResult:
        """Test the running server's directory and look `username` up (the console's button)."""
        if self.directory is None:
            raise ServiceError(_("No company directory is configured ([ldap] in parlour.toml)."))
        result = await self.directory.check(username.strip())
        audit.info("admin %s: tested the directory: %s", actor, describe(result))
        return result

    async def groups(self) -> list[tuple[str, str]]:
        """(DN, name) of the directory's groups for the console to offer; none when it is off or silent."""
        if self.directory is None:
            return []
        try:
            return await self.directory.groups()
        except ConnectionError:  # the page still works; the directory page says what is wrong
            return []

    @staticmethod
    async def test(settings: LdapConfig, username: str = "") -> CheckResult:
        """Test settings that are not saved yet (the wizard's button), with a directory made for it."""
        directory = LdapDirectory(settings)
        try:
            return await directory.check(username.strip())
        finally:
            directory.close()
