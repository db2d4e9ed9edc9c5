"""Reading parlour.toml: TOML in, a validated frozen `Config` out, or every problem at once.

Each problem names the file, the line, the dotted key, the value as written and what is allowed:
`parlour.toml:14: c2s.port = 70000: expected an integer from 1 to 65535`. tomllib keeps no
positions, so `_KeyLines` finds each key's line with a small scan of the (already valid) source.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import re
import tomllib
from bisect import bisect_right
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from appliance.config import model, spec
from appliance.config.model import Config
from appliance.config.options import ModuleOptions, Schema, schema

KeyPath = tuple[str, ...]


class ConfigError(Exception):
    """The configuration is invalid; `problems` holds one "file:line: key = value: why" line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_config(
    path: Path, *, modules: Iterable[type[ModuleOptions]], default_state_dir: Path | None = None
) -> Config:
    """Read and validate a config file; relative paths in it resolve against its folder.

    `modules` are the module classes the server is made of: their options are the [modules.*] tables.
    `default_state_dir` is used when the file sets no server.state_dir (default: the platform's).
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    config = parse_config(text, str(path), modules=modules, base_dir=path.absolute().parent,
                          default_state_dir=default_state_dir)
    return _replace_source(config, path)


def parse_config(
    text: str,
    source: str,
    *,
    modules: Iterable[type[ModuleOptions]],
    base_dir: Path | None = None,
    default_state_dir: Path | None = None,
) -> Config:
    """Validate TOML text; `source` names it in messages, `base_dir` anchors relative paths
    (default: the folder of `source`); `modules` and `default_state_dir` as for `load_config`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_syntax_problem(source, exc)]) from None
    if base_dir is None:
        base_dir = Path(source).absolute().parent
    builder = _Builder(schema(modules), source, _KeyLines(text).lines, base_dir, default_state_dir)
    config = builder.build(data)
    if builder.problems or config is None:
        raise ConfigError(builder.sorted_problems())
    return config


def default_config(state_dir: Path, *, modules: Iterable[type[ModuleOptions]] = ()) -> Config:
    """A working configuration without a file: host "localhost" on loopback, TLS still required, and
    `modules` at their default options."""
    options = tuple(m.options() for m in modules if m.options is not None)
    return Config(
        server=model.ServerConfig(state_dir=state_dir),
        hosts=(model.HostConfig(name="localhost", modules=model.ModulesConfig(options=options)),),
        c2s=model.C2SConfig(interfaces=("127.0.0.1", "::1")),
    )


def _replace_source(config: Config, path: Path) -> Config:
    return dataclasses.replace(config, source=path)


_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$|\s*\(at end of document\)\s*$")


def _syntax_problem(source: str, exc: tomllib.TOMLDecodeError) -> str:
    message = str(exc)
    match = _AT.search(message)
    if match and match[1]:
        return f"{source}:{match[1]}:{match[2]}: invalid TOML: {message[: match.start()]}"
    if match:
        return f"{source}: invalid TOML: {message[: match.start()]} at the end of the file"
    return f"{source}: invalid TOML: {message}"


def dotted(path: KeyPath) -> str:
    """A key path as TOML would write it: hosts."example.org".modules."""
    return ".".join(spec.toml_key(part) for part in path)


# --- validation ------------------------------------------------------------------------------------


@functools.cache
def _other_tables_index(schema: Schema) -> dict[str, list[str]]:
    """Key name → dotted paths of every global key with that name (to suggest a moved key)."""
    index: dict[str, list[str]] = {}
    for table in schema.tables():
        for key in table.keys:
            index.setdefault(key.name, []).append(f"{table.path}.{key.name}")
    return index


class _Builder:
    """Walks parsed TOML against the schema, converting values and collecting problems."""

    def __init__(
        self, schema: Schema, source: str, lines: dict[KeyPath, int], base_dir: Path,
        default_state_dir: Path | None,
    ) -> None:
        self.schema = schema
        self.source = source
        self.default_state_dir = default_state_dir
        self.lines = lines
        self.base_dir = base_dir
        self.problems: list[tuple[int, str]] = []

    # problems

    def line_of(self, path: KeyPath) -> int | None:
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None

    def add(self, path: KeyPath, message: str) -> None:
        line = self.line_of(path) if path else None
        where = f"{self.source}:{line}: " if line else f"{self.source}: "
        self.problems.append((line or 0, where + message))

    def bad_value(self, path: KeyPath, value: object, why: str) -> None:
        self.add(path, f"{dotted(path)} = {spec.toml_literal(value, 80)}: {why}")

    def unknown(self, path: KeyPath, known: list[str], table_path: str | None) -> None:
        name = path[-1]
        message = f'unknown key "{dotted(path)}"'
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        moved = [p for p in _other_tables_index(self.schema).get(name, []) if p.rsplit(".", 1)[0] != table_path]
        if close:
            message += f'; did you mean "{dotted((*path[:-1], close[0]))}"?'
        elif moved:
            message += f'; did you mean "{moved[0]}"?'
        elif known:
            message += f"; expected one of: {', '.join(known)}"
        self.add(path, message)

    def sorted_problems(self) -> list[str]:
        return [message for _, message in sorted(self.problems, key=lambda p: p[0])]

    # reading

    def read_table(self, table: spec.Table, data: object, path: KeyPath) -> dict[str, Any]:
        """Converted values of the keys present in `data` (nested tables as dicts)."""
        if not isinstance(data, dict):
            self.bad_value(path, data, "expected a table")
            return {}
        out: dict[str, Any] = {}
        for name, value in data.items():
            key_path = (*path, name)
            key = table.key(name)
            sub = table.table(name)
            if key is not None:
                try:
                    converted = key.kind.convert(value)
                except spec.Invalid as exc:
                    self.bad_value(key_path, value, str(exc))
                    continue
                if isinstance(key.kind, spec.PathKind) and isinstance(converted, Path):
                    converted = self.base_dir / converted  # an absolute path stays as it is
                out[name] = converted
            elif sub is not None:
                out[name] = self.read_table(sub, value, key_path)
            else:
                self.unknown(key_path, table.names(), table.path)
        return out

    def make(self, table: spec.Table, values: dict[str, Any], path: KeyPath, **extra: Any) -> Any:
        """The model dataclass of `table`, with defaults for missing keys."""
        kwargs: dict[str, Any] = dict(extra)
        for key in table.keys:
            if key.name in values:
                kwargs[key.name] = values[key.name]
            elif key.default is spec.REQUIRED:
                self.add(path, f'missing key "{dotted((*path, key.name))}": expected {key.kind.allowed()}')
            else:
                kwargs[key.name] = key.default
        subs = [self.make(sub, values.get(sub.name, {}), (*path, sub.name)) for sub in table.tables]
        if any(key.name not in kwargs for key in table.keys):
            return None
        if table.model is model.ModulesConfig:  # the options of each enabled module, whatever their names
            disabled = set(kwargs["disabled"])
            enabled = tuple(made for sub, made in zip(table.tables, subs, strict=True) if sub.name not in disabled)
            return model.ModulesConfig(options=enabled, **kwargs)
        kwargs.update((sub.name, made) for sub, made in zip(table.tables, subs, strict=True))
        return table.model(**kwargs)

    def build(self, data: dict[str, Any]) -> Config | None:
        sections = self.schema.sections
        for name in data:
            if name not in self.schema.top_level_names:
                self.unknown((name,), list(self.schema.top_level_names), None)
        values = {t.name: self.read_table(t, data.get(t.name, {}), (t.name,)) for t in sections}
        hosts = self.build_hosts(data.get("hosts"), values["modules"], values["limits"])

        if "state_dir" not in values["server"]:
            from appliance.platform.paths import default_state_dir

            values["server"]["state_dir"] = self.default_state_dir or default_state_dir()
        self.check_together(values, data)
        made = {t.name: self.make(t, values[t.name], (t.name,)) for t in sections if t.name != "modules"}
        if self.problems or not hosts:
            return None
        return Config(hosts=hosts, **made)

    def build_hosts(
        self, data: object, global_modules: dict[str, Any], global_limits: dict[str, Any]
    ) -> tuple[model.HostConfig, ...]:
        if data is None:
            self.add((), 'no hosts: add at least one table like [hosts."example.org"]')
            return ()
        if not isinstance(data, dict):
            self.bad_value(("hosts",), data, 'expected tables like [hosts."example.org"]')
            return ()
        if not data:
            self.add(("hosts",), 'no hosts: add at least one table like [hosts."example.org"]')
        hosts: list[model.HostConfig] = []
        seen: dict[str, str] = {}
        for written, host_data in data.items():
            path = ("hosts", written)
            try:
                name = spec.check_domain(written)
            except ValueError:
                self.add(path, f'host "{written}": expected {spec.DOMAIN.allowed()}')
                continue
            if name in seen:
                self.add(path, f'host "{written}" is the same host as "{seen[name]}"')
                continue
            seen[name] = written
            values = self.read_table(self.schema.host, host_data, path)
            modules = _merge(global_modules, values.get("modules", {}))
            host_modules = self.schema.host.table("modules")
            assert host_modules is not None
            made = self.make(host_modules, modules, (*path, "modules"))
            limits = None
            if "limits" in values:
                host_limits = self.schema.host.table("limits")
                assert host_limits is not None
                merged = {k.name: global_limits[k.name] for k in host_limits.keys if k.name in global_limits}
                limits = self.make(host_limits, merged | values["limits"], (*path, "limits"))
            if made is not None:
                hosts.append(model.HostConfig(name=name, modules=made, limits=limits))
        return tuple(hosts)

    def check_together(self, values: dict[str, dict[str, Any]], data: dict[str, Any]) -> None:
        """Rules that involve more than one key."""
        for table in (spec.C2S, spec.S2S):
            self.check_ports_differ(values, table)
        hosted = {h.lower() for h in (data.get("hosts") or {}) if isinstance(h, str)}
        for name, _secret in values["components"].get("secrets", ()):
            if name in hosted:
                self.add(("components", "secrets"), f'components.secrets: "{name}" is a host; a component '
                         "needs a domain of its own")
        ldap = values.get("ldap", {})
        if ldap.get("enabled") and not ldap.get("uri"):
            self.bad_value(("ldap", "enabled"), True, "ldap.uri must be set too")
        if ldap.get("enabled") and not ldap.get("base"):
            self.bad_value(("ldap", "enabled"), True, "ldap.base must be set too")
        tls = values["tls"]
        given = [name for name in ("certificate", "private_key") if tls.get(name) is not None]
        if len(given) == 1:
            other = "private_key" if given[0] == "certificate" else "certificate"
            self.bad_value(("tls", given[0]), data["tls"][given[0]], f"tls.{other} must be set too")
        cluster = values["cluster"]
        if cluster.get("enabled") and not values["storage"].get("url"):
            self.bad_value(("cluster", "enabled"), True, "a cluster's nodes share one database: set [storage] "
                           'url = "postgresql://…" (docs/cluster.md)')
        expiry = cluster.get("expiry", _default(spec.CLUSTER, "expiry"))
        if cluster.get("heartbeat", _default(spec.CLUSTER, "heartbeat")) * 2 > expiry:
            written = data.get("cluster", {}).get("expiry", expiry)
            self.bad_value(("cluster", "expiry"), written, "must be at least twice cluster.heartbeat")

    def check_ports_differ(self, values: dict[str, dict[str, Any]], table: spec.Table) -> None:
        """The STARTTLS port and the direct TLS port of a listener table ([c2s], [s2s]) must differ."""
        name = table.name
        given = values[name]
        port = given.get("port", _default(table, "port"))
        direct = given.get("direct_tls_port", _default(table, "direct_tls_port"))
        if direct and direct == port:
            if "direct_tls_port" in given:
                self.bad_value((name, "direct_tls_port"), direct, f"must differ from {name}.port ({port})")
            else:
                self.bad_value((name, "port"), port,
                               f"must differ from {name}.direct_tls_port ({direct} by default)")


def _default(table: spec.Table, name: str) -> Any:
    key = table.key(name)
    assert key is not None
    return key.default


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged key by key onto `base` (nested tables merged, everything else replaced)."""
    out = dict(base)
    for name, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(name), dict):
            out[name] = _merge(out[name], value)
        else:
            out[name] = value
    return out


# --- key positions ---------------------------------------------------------------------------------


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclasses.dataclass
class _KeyLines:
    """Finds the 1-based line of every key and table header in valid TOML text."""

    text: str

    def __post_init__(self) -> None:
        self.lines: dict[KeyPath, int] = {}
        self.newlines = [i for i, c in enumerate(self.text) if c == "\n"]
        self.i = 0
        # Positions are best effort; the data itself came from tomllib.
        with contextlib.suppress(IndexError, ValueError, tomllib.TOMLDecodeError):
            self.scan()

    def line(self, pos: int) -> int:
        return bisect_right(self.newlines, pos - 1) + 1

    def record(self, path: KeyPath, pos: int) -> None:
        line = self.line(pos)
        for end in range(1, len(path) + 1):
            self.lines.setdefault(path[:end], line)

    def peek(self, n: int = 1) -> str:
        return self.text[self.i : self.i + n]

    def skip_blank(self, newlines: bool) -> None:
        """Skip spaces, and with `newlines` also line breaks and comments."""
        text = self.text
        while self.i < len(text):
            c = text[self.i]
            if c in " \t" or (newlines and c in "\r\n"):
                self.i += 1
            elif c == "#" and newlines:
                end = text.find("\n", self.i)
                self.i = len(text) if end < 0 else end
            else:
                break

    def scan(self) -> None:
        table: KeyPath = ()
        text = self.text
        while True:
            self.skip_blank(newlines=True)
            if self.i >= len(text):
                return
            start = self.i
            if text[self.i] == "[":
                self.i += 2 if self.peek(2) == "[[" else 1
                table = self.key()
                self.record(table, start)
            else:
                path = (*table, *self.key())
                self.record(path, start)
                self.skip_blank(newlines=False)
                self.i += 1  # "="
                self.value(path)
            end = text.find("\n", self.i)  # the rest of the line is "]", "]]" or a comment
            self.i = len(text) if end < 0 else end

    def key(self) -> KeyPath:
        parts: list[str] = []
        while True:
            self.skip_blank(newlines=False)
            c = self.text[self.i]
            if c in "\"'":
                start = self.i
                self.skip_string()
                parts.append(tomllib.loads("k = " + self.text[start : self.i])["k"])
            else:
                match = _BARE_KEY.match(self.text, self.i)
                if not match:
                    raise ValueError("no key")
                parts.append(match[0])
                self.i = match.end()
            self.skip_blank(newlines=False)
            if self.peek() != ".":
                return tuple(parts)
            self.i += 1

    def skip_string(self) -> None:
        text = self.text
        quote = text[self.i]
        if self.peek(3) == quote * 3:
            self.i += 3
            while not text.startswith(quote * 3, self.i):
                self.i += 2 if quote == '"' and text[self.i] == "\\" else 1
            self.i += 3
            while self.peek() == quote:  # up to two quotes may close the content
                self.i += 1
            return
        self.i += 1
        while text[self.i] != quote:
            self.i += 2 if quote == '"' and text[self.i] == "\\" else 1
        self.i += 1

    def value(self, path: KeyPath | None) -> None:
        """Skip one value, recording the keys of inline tables when `path` is given."""
        self.skip_blank(newlines=False)
        c = self.text[self.i]
        if c in "\"'":
            self.skip_string()
        elif c == "[":
            self.i += 1
            while True:
                self.skip_blank(newlines=True)
                if self.peek() == "]":
                    self.i += 1
                    return
                self.value(None)
                self.skip_blank(newlines=True)
                if self.peek() == ",":
                    self.i += 1
        elif c == "{":
            self.i += 1
            while True:
                self.skip_blank(newlines=False)
                if self.peek() == "}":
                    self.i += 1
                    return
                start = self.i
                sub = self.key()
                if path is not None:
                    self.record((*path, *sub), start)
                self.skip_blank(newlines=False)
                self.i += 1  # "="
                self.value(None if path is None else (*path, *sub))
                self.skip_blank(newlines=False)
                if self.peek() == ",":
                    self.i += 1
        else:
            while self.i < len(self.text) and self.text[self.i] not in ",]}#\r\n":
                self.i += 1
