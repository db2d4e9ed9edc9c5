"""Turn a copy of ../shared/bench into its TLS-on variant (STARTTLS for every server), in place.

    python benchmarks/tls_variant.py BENCH_COPY CERT KEY

- scenarios: the login and msg scenarios do <starttls/> and a stream restart right after the first
  stream header, so the timed "login" transaction includes the TLS handshake and every message is
  encrypted;
- ejabberd: starttls on its c2s listener with the given certificate (not required: the warm-up check
  still logs in without TLS);
- Prosody: mod_tls loaded with the given certificate, encryption not required (same reason).
Parlour offers STARTTLS already (its self-signed certificate); the relay gets benchmarks/relay_tls.py.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

STARTTLS_STEP = (
    '\n        <request><jabber type="starttls" ack="bidi_ack"/></request>'
    '\n        <request><jabber type="connect" ack="parse" regexp="features"/></request>'
)


def add_starttls(scenario: str) -> str:
    """Insert STARTTLS and a restart after the first connect request (the one that authenticates)."""
    first_connect = scenario.index('<jabber type="connect"')
    end = scenario.index("</request>", first_connect) + len("</request>")
    return scenario[:end] + STARTTLS_STEP + scenario[end:]


def ejabberd_tls(config: str, cert: str, key: str) -> str:
    config = config.replace("    starttls: false\n", "    starttls: true\n")
    return config.replace("\nhosts:\n", f'\ncertfiles:\n  - "{cert}"\n  - "{key}"\n\nhosts:\n', 1)


def prosody_tls(config: str, cert: str, key: str) -> str:
    config = config.replace('modules_disabled = { "s2s"; "tls"; }', 'modules_disabled = { "s2s"; }')
    config = re.sub(r'(modules_enabled = \{\n)', r'\1\t"tls";\n', config, count=1)
    return config.replace('VirtualHost "@DOMAIN@"', f'ssl = {{ certificate = "{cert}"; key = "{key}"; }}\n\n'
                          'VirtualHost "@DOMAIN@"')


def main() -> None:
    bench, cert, key = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    for name in ("login.xml.in", "msg.xml.in"):
        path = bench / "scenarios" / name
        path.write_text(add_starttls(path.read_text()))
    ejabberd = bench / "peers" / "ejabberd.yml.in"
    ejabberd.write_text(ejabberd_tls(ejabberd.read_text(), cert, key))
    prosody = bench / "peers" / "prosody.cfg.lua.in"
    prosody.write_text(prosody_tls(prosody.read_text(), cert, key))
    for path, needle in ((ejabberd, "starttls: true"), (prosody, '"tls";')):
        if needle not in path.read_text():
            sys.exit(f"{path}: could not switch TLS on (the shared bench changed?)")


if __name__ == "__main__":
    main()
