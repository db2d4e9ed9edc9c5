"""Loading parlour.toml: good files, and every kind of problem reported with file:line."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from appliance.catalog import builtin_schema, default_config, load_config, parse_config
from appliance.config import Config, ConfigError, spec
from appliance.config import model as m
from appliance.modules.contact_addresses import ContactAddressesOptions
from appliance.modules.offline import OfflineOptions
from appliance.modules.outage_status import OutageStatusOptions
from appliance.modules.register import RegisterOptions
from appliance.modules.roster import RosterOptions

MINIMAL = '[server]\nstate_dir = "/srv/parlour"\n\n[hosts."example.org"]\n'


def parse(text: str) -> Config:
    return parse_config(textwrap.dedent(text), "parlour.toml", base_dir=Path("/etc/parlour"))


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


# --- good files ------------------------------------------------------------------------------------


def test_minimal_file_gets_model_defaults() -> None:
    config = parse(MINIMAL)
    assert config.server == m.ServerConfig(state_dir=Path("/srv/parlour"))
    [host] = config.hosts
    assert host.name == "example.org"
    assert host.modules == default_config(Path("/x")).hosts[0].modules  # every module at its defaults
    assert len(host.modules.options) >= 20
    assert config.c2s == m.C2SConfig()
    assert config.limits == m.LimitsConfig()
    assert config.tls == m.TlsConfig()
    assert config.host("example.org") is config.hosts[0]


def test_full_file() -> None:
    config = parse("""
        [server]
        state_dir = "state"
        admins = ["Admin@Example.org"]

        [c2s]
        interfaces = ["127.0.0.1", "::1"]
        port = 15222
        direct_tls_port = 0
        require_encryption = false
        allow_plaintext_on_loopback = true
        resource_conflict = "reject"
        max_resources = 3
        legacy_session = false
        idle_timeout = "2h"
        ping_timeout = 30
        handshake_timeout = 1.5

        [tls]
        certificate = "certs/fullchain.pem"
        private_key = "/keys/privkey.pem"

        [limits]
        max_stanza_size = "1MiB"
        scram_iterations = 10000

        [logging]
        level = "debug"
        stanzas = true

        [modules]
        disabled = ["version"]

        [hosts."Example.org."]
        [hosts."chat.example.org"]
    """)
    assert config.server.state_dir == Path("/etc/parlour/state")
    assert config.server.admins == ("admin@example.org",)
    assert config.c2s == m.C2SConfig(
        interfaces=("127.0.0.1", "::1"), port=15222, direct_tls_port=0, require_encryption=False,
        allow_plaintext_on_loopback=True, resource_conflict="reject", max_resources=3,
        legacy_session=False, idle_timeout=7200.0, ping_timeout=30.0, handshake_timeout=1.5,
    )
    assert config.tls == m.TlsConfig(Path("/etc/parlour/certs/fullchain.pem"), Path("/keys/privkey.pem"))
    assert config.limits.max_stanza_size == 1024 * 1024
    assert config.limits.scram_iterations == 10000
    assert config.logging == m.LoggingConfig(level="debug", stanzas=True)
    assert [h.name for h in config.hosts] == ["example.org", "chat.example.org"]
    assert all(h.modules.disabled == ("version",) for h in config.hosts)


def test_load_config_reads_a_file_and_resolves_against_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "parlour.toml"
    path.write_text('[server]\nstate_dir = "data"\n[hosts.localhost]\n')
    config = load_config(path)
    assert config.source == path
    assert config.server.state_dir == tmp_path / "data"


def test_missing_state_dir_uses_the_platform_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLOUR_DEV", "1")
    config = parse("[hosts.localhost]\n")
    assert config.server.state_dir == Path.cwd() / "dev-state"
    given = parse_config("[hosts.localhost]\n", "x.toml", default_state_dir=Path("/srv/x"))
    assert given.server.state_dir == Path("/srv/x")


def test_default_config() -> None:
    config = default_config(Path("/tmp/state"))
    assert config.server.state_dir == Path("/tmp/state")
    assert [h.name for h in config.hosts] == ["localhost"]
    assert config.c2s.interfaces == ("127.0.0.1", "::1")
    assert config.c2s.require_encryption and not config.c2s.allow_plaintext_on_loopback
    assert config.hosts[0].modules.service_domains("localhost") == [
        "pubsub.localhost", "conference.localhost", "upload.localhost"]


def test_disabled_modules_have_no_options_and_serve_no_domain() -> None:
    config = parse(MINIMAL + '[modules]\ndisabled = ["muc", "upload"]\n[modules.offline]\nmax_messages = 3\n')
    modules = config.hosts[0].modules
    assert modules.service_domains("example.org") == ["pubsub.example.org"]
    assert modules.of(OfflineOptions).max_messages == 3
    assert modules.with_options(OfflineOptions(max_messages=4)).of(OfflineOptions).max_messages == 4


def test_example_file_loads() -> None:
    example = Path(__file__).parents[2] / "examples" / "parlour.toml"
    config = load_config(example)
    assert config.host("example.org") is not None


def test_the_example_cluster_is_three_nodes_of_one_configuration() -> None:
    folder = Path(__file__).parents[2] / "examples" / "cluster"
    configs = [load_config(folder / f"node-{n}.toml") for n in (1, 2, 3)]
    assert [c.cluster.node for c in configs] == ["xmpp-1", "xmpp-2", "xmpp-3"]
    assert all(c.cluster.enabled for c in configs)
    assert len({(c.storage, c.hosts, c.cluster.redis_url) for c in configs}) == 1
    assert (folder / "compose.yaml").read_text().count("./node-") == 3


# --- per-host module options -----------------------------------------------------------------------


def test_host_modules_merge_key_by_key_over_global_modules() -> None:
    config = parse(MINIMAL.replace('[hosts."example.org"]\n', "") + """
[modules]
disabled = ["version"]
[modules.offline]
max_messages = 50
[modules.register]
policy = "open"
min_password_length = 12

[hosts."a.example"]
[hosts."a.example".modules]
disabled = []
[hosts."a.example".modules.register]
policy = "closed"

[hosts."b.example"]
modules.offline = { max_messages = 7 }
modules.contact_addresses.abuse = ["mailto:abuse@b.example"]
""")
    a, b = config.hosts
    assert a.modules.disabled == ()
    assert a.modules.of(RegisterOptions) == RegisterOptions(policy="closed", min_password_length=12)
    assert a.modules.of(OfflineOptions).max_messages == 50
    assert b.modules.disabled == ("version",)
    assert b.modules.of(OfflineOptions).max_messages == 7
    assert b.modules.of(RegisterOptions) == RegisterOptions(policy="open", min_password_length=12)
    assert b.modules.of(ContactAddressesOptions).abuse == ("mailto:abuse@b.example",)
    assert b.modules.of(RosterOptions) == RosterOptions()


# --- durations and sizes ---------------------------------------------------------------------------


@pytest.mark.parametrize(("written", "seconds"), [
    ("30", 30.0), ("2.5", 2.5), ('"45s"', 45.0), ('"10m"', 600.0), ('"2h"', 7200.0), ('"1d"', 86400.0),
    ('"1500ms"', 1.5), ('" 3 m "', 180.0),
])
def test_durations(written: str, seconds: float) -> None:
    assert parse(f"{MINIMAL}[limits]\nauth_window = {written}\n").limits.auth_window == seconds


@pytest.mark.parametrize("written", ['"10"', '"10 minutes"', '"-5s"', "true", "5", '"2d"', "nan"])
def test_bad_durations(written: str) -> None:
    assert problems(f"{MINIMAL}[c2s]\nidle_timeout = {written}\n") == [
        f'parlour.toml:6: c2s.idle_timeout = {written if written != "nan" else "nan"}: expected a '
        'duration such as 30, "30s", "10m", "2h" or "1d" from 10s to 1d'
    ]


@pytest.mark.parametrize(("written", "size"), [
    ("65536", 65536), ('"256KiB"', 262144), ('"10MiB"', 10 * 1024**2), ('"64kB"', 64000),
    ('"1.5MiB"', 1572864), ('"20000B"', 20000),
])
def test_sizes(written: str, size: int) -> None:
    assert parse(f"{MINIMAL}[limits]\nmax_stanza_size = {written}\n").limits.max_stanza_size == size


@pytest.mark.parametrize("written", ['"1TiB"', '"10 mb"', "1.5", '"5KiB"', '"0.5B"', "-1"])
def test_bad_sizes(written: str) -> None:
    assert problems(f"{MINIMAL}[limits]\nmax_stanza_size = {written}\n") == [
        f'parlour.toml:6: limits.max_stanza_size = {written}: expected a size such as 65536, "64KiB" '
        'or "10MiB" from 10000B to 64MiB'
    ]


# --- problems, with exact file:line ---------------------------------------------------------------


def test_out_of_range_integer() -> None:
    assert problems(MINIMAL + "\n[c2s]\n\nport = 70000\n") == [
        "parlour.toml:8: c2s.port = 70000: expected an integer from 1 to 65535"
    ]


def test_wrong_types() -> None:
    assert problems(MINIMAL + """
[c2s]
port = "5222"
require_encryption = "yes"
interfaces = "0.0.0.0"
resource_conflict = "kick"
[logging]
level = "verbose"
""") == [
        'parlour.toml:7: c2s.port = "5222": expected an integer from 1 to 65535',
        'parlour.toml:8: c2s.require_encryption = "yes": expected true or false',
        'parlour.toml:9: c2s.interfaces = "0.0.0.0": expected a list of IP addresses like "0.0.0.0" '
        'or "::1" (at least one)',
        'parlour.toml:10: c2s.resource_conflict = "kick": expected one of "replace" or "reject"',
        'parlour.toml:12: logging.level = "verbose": expected one of "debug", "info", "warning" or "error"',
    ]


def test_bad_list_items_are_named() -> None:
    assert problems("""
        [server]
        admins = ["admin@example.org", "example.org", "x@y/res"]
        [c2s]
        interfaces = ["::1", "::1"]
        [hosts.localhost]
    """) == [
        'parlour.toml:3: server.admins = ["admin@example.org", "example.org", "x@y/res"]: expected a list '
        'of bare JIDs like "admin@example.org"; "example.org" is not one',
        'parlour.toml:5: c2s.interfaces = ["::1", "::1"]: expected a list of IP addresses like "0.0.0.0" '
        'or "::1" (at least one) without duplicates',
    ]



def test_outage_status_addresses_are_web_urls() -> None:
    """XEP-0455 clients fetch the status document over http(s); anything else is refused at load."""
    config = parse("""
        [modules.outage_status]
        addresses = ["https://status.example.org/xmpp.json"]
        [hosts.localhost]
    """)
    assert config.hosts[0].modules.of(OutageStatusOptions).addresses == ("https://status.example.org/xmpp.json",)
    (problem,) = problems("""
        [modules.outage_status]
        addresses = ["mailto:ops@example.org"]
        [hosts.localhost]
    """)
    assert problem.startswith('parlour.toml:3: modules.outage_status.addresses = ["mailto:ops@example.org"]: '
                              "expected a list of http(s) URLs")

def test_unknown_key_suggests_the_closest() -> None:
    assert problems(MINIMAL + "[c2s]\nprot = 5222\n") == [
        'parlour.toml:6: unknown key "c2s.prot"; did you mean "c2s.port"?'
    ]


def test_unknown_key_in_the_wrong_table_points_to_the_right_one() -> None:
    assert problems(MINIMAL + "[c2s]\nmax_stanza_size = 1000\n") == [
        'parlour.toml:6: unknown key "c2s.max_stanza_size"; did you mean "limits.max_stanza_size"?'
    ]


def test_unknown_key_without_a_close_match_lists_the_keys() -> None:
    assert problems(MINIMAL + "[logging]\nxyzzy = 1\n") == [
        'parlour.toml:6: unknown key "logging.xyzzy"; expected one of: level, stanzas'
    ]


def test_unknown_table_and_top_level_key() -> None:
    assert problems("flavour = 1\n" + MINIMAL + "[serverr]\n[modules.oflline]\nmax_messages = 1\n") == [
        'parlour.toml:1: unknown key "flavour"; expected one of: server, c2s, tls, components, federation, s2s, acme, '
        "http, console, backup, turn, ldap, limits, storage, cluster, logging, modules, hosts",
        'parlour.toml:6: unknown key "serverr"; did you mean "server"?',
        'parlour.toml:7: unknown key "modules.oflline"; did you mean "modules.offline"?',
    ]


def test_storage_url_is_empty_or_a_postgresql_url() -> None:
    assert problems(MINIMAL + '[storage]\nurl = "mysql://db.example.org/parlour"\n') == [
        'parlour.toml:6: storage.url = "mysql://db.example.org/parlour": expected "" (the embedded SQLite '
        'database, parlour.db in the state folder) or a PostgreSQL URL like '
        '"postgresql://parlour@db.example.org/parlour"',
    ]
    config = parse(MINIMAL + '[storage]\nurl = "postgresql://parlour@db.example.org/parlour"\n')
    assert config.storage.url == "postgresql://parlour@db.example.org/parlour"
    assert parse(MINIMAL).storage.url == ""  # the embedded SQLite file


def test_problems_in_hosts_dotted_keys_and_inline_tables() -> None:
    assert problems("""\
        [hosts."example.org"]
        modules.offline = { max_messages = -1, bogus = true }
        # a comment
        modules.roster.max_itemz = 5

        [hosts."example.org".modules.register]
        policy = "opne"
    """) == [
        'parlour.toml:2: hosts."example.org".modules.offline.max_messages = -1: expected an integer from 0 '
        "to 1000000",
        'parlour.toml:2: unknown key "hosts."example.org".modules.offline.bogus"; expected one of: '
        "max_messages",
        'parlour.toml:4: unknown key "hosts."example.org".modules.roster.max_itemz"; did you mean '
        '"hosts."example.org".modules.roster.max_items"?',
        'parlour.toml:7: hosts."example.org".modules.register.policy = "opne": expected one of "closed", '
        '"open" or "loopback"',
    ]


def test_lines_are_found_past_multiline_strings_and_arrays() -> None:
    assert problems('''\
        [server]
        admins = [
          "a@example.org",  # first
          "b@example.org",
        ]
        state_dir = """
        port = 1
        """
        [c2s]
        interfaces = ["127.0.0.1",
                      "::1"]
        "port" = 0
        [hosts.localhost]
    ''') == ['parlour.toml:12: c2s.port = 0: expected an integer from 1 to 65535']


def test_bad_host_names() -> None:
    assert problems("""\
        [hosts."example.org"]
        [hosts."Example.ORG"]
        [hosts."bad_host"]
        [hosts."127.0.0.1"]
        [hosts."a@b.org"]
    """) == [
        'parlour.toml:2: host "Example.ORG" is the same host as "example.org"',
        'parlour.toml:3: host "bad_host": expected a domain name like "example.org"',
        'parlour.toml:4: host "127.0.0.1": expected a domain name like "example.org"',
        'parlour.toml:5: host "a@b.org": expected a domain name like "example.org"',
    ]


def test_at_least_one_host() -> None:
    assert problems("[server]\nadmins = []\n") == [
        'parlour.toml: no hosts: add at least one table like [hosts."example.org"]'
    ]
    assert problems("hosts = {}\n") == [
        'parlour.toml:1: no hosts: add at least one table like [hosts."example.org"]'
    ]
    assert problems('hosts = ["example.org"]\n') == [
        'parlour.toml:1: hosts = ["example.org"]: expected tables like [hosts."example.org"]'
    ]


def test_a_table_given_a_value() -> None:
    assert problems(MINIMAL + "[modules]\noffline = 5\n") == [
        "parlour.toml:6: modules.offline = 5: expected a table"
    ]


def test_rules_across_keys() -> None:
    assert problems(MINIMAL + '[c2s]\nport = 5223\n[tls]\nprivate_key = "key.pem"\n') == [
        "parlour.toml:6: c2s.port = 5223: must differ from c2s.direct_tls_port (5223 by default)",
        'parlour.toml:8: tls.private_key = "key.pem": tls.certificate must be set too',
    ]
    assert problems(MINIMAL + "[c2s]\ndirect_tls_port = 5222\n") == [
        "parlour.toml:6: c2s.direct_tls_port = 5222: must differ from c2s.port (5222)",
    ]
    assert problems(MINIMAL + "[s2s]\nport = 5270\n") == [
        "parlour.toml:6: s2s.port = 5270: must differ from s2s.direct_tls_port (5270 by default)",
    ]
    assert parse(MINIMAL + "[s2s]\ndirect_tls_port = 0\n").s2s.direct_tls_port == 0  # the listener off


def test_all_problems_at_once_in_file_order() -> None:
    found = problems("""\
        [hosts."example.org"]
        modules.offline.max_messages = "many"

        [c2s]
        port = 0
        prot = 1
        idle_timeout = "forever"

        [limits]
        max_depth = 2
    """)
    assert [p.split(":")[1] for p in found] == ["2", "5", "6", "7", "10"]
    assert len(found) == 5


def test_syntax_error_gives_line_and_column() -> None:
    assert problems(MINIMAL + "[c2s]\nport = = 1\n") == [
        "parlour.toml:6:8: invalid TOML: Invalid value"
    ]
    assert problems("[c2s]\nport = 1\nport = 2\n")[0].startswith("parlour.toml:3:")


def test_load_config_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert info.value.problems == [f"{missing}: cannot read the file: No such file or directory"]
    bad = tmp_path / "bad.toml"
    bad.write_text(MINIMAL + "[c2s]\nport = 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert info.value.problems == [f"{bad}:6: c2s.port = 0: expected an integer from 1 to 65535"]
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b'# caf\xe9\n[hosts.localhost]\n')
    with pytest.raises(ConfigError) as info:
        load_config(latin1)
    assert info.value.problems[0].startswith(f"{latin1}: not UTF-8 text")


def test_long_values_are_shortened() -> None:
    [problem] = problems(MINIMAL + f'[logging]\nlevel = "{"x" * 200}"\n')
    assert "…: expected one of" in problem
    assert len(problem) < 200


# --- the schema matches the model ------------------------------------------------------------------


def test_every_model_field_has_exactly_one_key() -> None:
    schema = builtin_schema()
    exempt = {(m.HostConfig, "name"), (m.ModulesConfig, "options")}  # options: one table per module
    for top in (*schema.sections, schema.host):
        for table in top.walk():
            fields = {f.name for f in dataclasses.fields(table.model)} - {n for c, n in exempt
                                                                        if c is table.model}
            expected = table.names() if table.model is not m.ModulesConfig else [k.name for k in table.keys]
            assert sorted(fields) == sorted(expected), table.path


def test_config_sections_are_all_in_the_schema() -> None:
    fields = {f.name for f in dataclasses.fields(m.Config)} - {"hosts", "source"}
    assert fields == {t.name for t in builtin_schema().sections} - {"modules"}


def test_every_module_with_options_has_its_table() -> None:
    from appliance.catalog import BUILTIN

    tables = {t.name: t.model for t in builtin_schema().modules.tables}
    assert tables == {m.name: m.options for m in BUILTIN if m.options is not None}
    assert len(tables) >= 20


def test_an_option_without_kind_or_doc_is_refused() -> None:
    from appliance.config.options import option, options_table
    from appliance.config.spec import Int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Undocumented:
        """A table."""

        size: int = 3

    @dataclasses.dataclass(frozen=True, slots=True)
    class NoDocstring:
        size: int = option(3, Int(0, 9), "How big.")

    with pytest.raises(TypeError, match=r"Undocumented.size: declare it with option\(\) or section\(\)"):
        options_table("modules.x", Undocumented)
    with pytest.raises(TypeError, match="the docstring documents the table"):
        options_table("modules.x", NoDocstring)


def test_every_default_passes_its_own_validation() -> None:
    for table in builtin_schema().tables():
        for key in table.keys:
            if key.default_doc is None and key.default is not None:
                assert key.kind.convert(_as_toml_value(key.kind, key.default)) == key.default, key.name


def _as_toml_value(kind: spec.Kind, value: object) -> object:
    import tomllib

    return tomllib.loads(f"v = {kind.to_toml(value)}")["v"]


def test_a_choice_takes_its_values_from_the_literal_type() -> None:
    from typing import Literal

    from appliance.modules.register import RegisterOptions, RegistrationPolicy

    assert spec.Choice.of(RegistrationPolicy).values == ("closed", "open", "loopback")
    [table] = [t for t in builtin_schema().tables() if t.model is RegisterOptions]
    assert table.key("policy").kind == spec.Choice(("closed", "open", "loopback"))  # type: ignore[union-attr]
    with pytest.raises(TypeError, match="not a Literal of strings"):
        spec.Choice.of(Literal[1, 2])


def test_host_limits_override_the_global_rates_key_by_key() -> None:
    config = parse(
        '[server]\nstate_dir = "/srv/parlour"\n\n[limits]\nrate = "128KiB"\n\n'
        '[hosts."a.example"]\n\n[hosts."b.example".limits]\nstanza_rate = 7\n'
    )
    a, b = config.hosts
    assert a.limits is None and config.limits.rate == 131_072
    assert b.limits == m.ShapingConfig(rate=131_072, stanza_rate=7)
    assert problems(f'{MINIMAL}[hosts."x.example".limits]\nrate = 5\n') == [
        'parlour.toml:6: hosts."x.example".limits.rate = 5: expected a size such as 65536, "64KiB" or "10MiB" '
        "from 1KiB to 1GiB"
    ]


def test_component_secrets_are_a_table_of_domains_to_long_enough_secrets() -> None:
    config = parse(MINIMAL + '[components]\nport = 5348\n'
                   'secrets = { "IRC.example.org" = "a long secret", "b.example.org" = "12345678" }\n')
    assert config.components.secrets == (("b.example.org", "12345678"), ("irc.example.org", "a long secret"))
    assert config.components.secret("irc.example.org") == "a long secret"
    assert config.components.interfaces == ("127.0.0.1",) and config.components.port == 5348
    assert problems(MINIMAL + '[components]\nsecrets = { "irc.example.org" = "short" }\n') == [
        'parlour.toml:6: components.secrets = { "irc.example.org" = "short" }: expected a table of domain names '
        'like "example.org" to a secret of at least 8 characters each; "irc.example.org" = "short" is not one'
    ]
    assert problems(MINIMAL + '[components]\nsecrets = { "example.org" = "long enough" }\n') == [
        'parlour.toml:6: components.secrets: "example.org" is a host; a component needs a domain of its own'
    ]


def test_s2s_resolver_settings() -> None:
    config = parse(MINIMAL + '[s2s]\nstatic_routes = ["a.test=[::1]:5270", "b.test=h.b"]\n'
                   'nameservers = ["127.0.0.1:8053"]\ndns_timeout = "2s"\n')
    assert config.s2s.static_routes == ("a.test=[::1]:5270", "b.test=h.b")
    assert config.s2s.nameservers == ("127.0.0.1:8053",) and config.s2s.dns_timeout == 2.0
    assert problems(MINIMAL + '[s2s]\nstatic_routes = ["a.test"]\n') == [
        'parlour.toml:6: s2s.static_routes = ["a.test"]: expected a list of routes like '
        '"example.org=192.0.2.7:5269"; "a.test" is not one'
    ]


def test_a_cluster_needs_the_shared_database_and_an_expiry_past_two_heartbeats() -> None:
    assert problems(MINIMAL + "[cluster]\nenabled = true\nheartbeat = 5\nexpiry = 8\n") == [
        'parlour.toml:6: cluster.enabled = true: a cluster\'s nodes share one database: set [storage] url = '
        '"postgresql://…" (docs/cluster.md)',
        "parlour.toml:8: cluster.expiry = 8: must be at least twice cluster.heartbeat",
    ]
