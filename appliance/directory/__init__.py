"""The company directory (LDAP, Active Directory): logins, profiles and groups read with ldap3.

ldap3 is pure Python (no libldap, no C extension), so PyInstaller freezes it like any other module and
the frozen builds need nothing from the target system. Its calls block, so every request runs in a
worker thread; the event loop never waits for the directory.
"""
