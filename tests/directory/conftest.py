"""The directory tests share one real slapd (started once per test run, stopped at its end)."""

from tests.directory.slapd import slapd  # noqa: F401 (fixture)
