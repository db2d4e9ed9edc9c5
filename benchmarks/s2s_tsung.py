"""Server-to-server throughput, latency and CPU with tsung as the load: two Parlours, two Prosodys, two ejabberds.

    sudo .venv/bin/python benchmarks/s2s_tsung.py --users 50 --rates 5 10 20 --step 15

The servers start as in s2s_bench.py (network namespace, own DNS, throwaway CA, s2s over TLS). One tsung
run per kind: N users log in on server A (first arrival phase) and N on server B (second phase), over
c2s PLAIN (a bench setting), all scripted as raw stanzas so each side names its own domain; each then
sends chat messages to a random user of the *other* server (`setdynvars random_number`), stepping the
per-user rate through --rates, --step seconds each. Before tsung starts, one message each way (as in
s2s_bench.py) opens the s2s streams, so the step figures do not include their set-up. Every body
carries tsung's own stamp (node hash and erlang:timestamp()), so a receiving user's bidi handler records
xmpp_msg_latency as usual.

What is counted: tsung runs with dumptraffic, and this script reads every chunk tsung received from
tsung.dump: a delivered message is a stamped body in received data, its latency is the dump's receive
time minus the stamp (tsung's own xmpp_msg_latency only looks at the first stamp of each TCP read).
Per step (its middle, a second trimmed at each edge for the skew between the two sides' starts):
delivered messages per second, latency median/p95, and the CPU of both servers' process groups
(sampled every 0.25 s) per delivered message. Needs root, tsung, Debian's prosody and ejabberd;
bounded: tsung has a load duration and a timeout. Figures only, no assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from xml.sax.saxutils import quoteattr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.s2s_bench import (  # noqa: E402
    PASSWORD,
    Running,
    cpu_seconds,
    each_kind,
    federating,
    in_namespace,
    open_streams,
)

LOGIN_RATE = 100  # arrivals/s per phase
SETTLE = 4  # seconds after the last login before the first message
TRIM = 1.0  # seconds left out at each edge of a step
STAMP = re.compile(rb"@@@(\d+),(\d+);(\d+);(\d+)@@@")
# tsung.dump entries: "Send:<epoch s.µs>:<pid>:<data>" and "Recv:..." (data may go on over more lines)
DUMP_LINE = re.compile(rb"^(Send|Recv):(\d+\.\d+):")
STREAM = ("<?xml version='1.0'?><stream:stream to='{domain}' xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
# the stamp tsung's ts_jabber writes and its bidi handler reads (ts_jabber_common:generate_stamp/1)
STAMP_EVAL = ("fun({_Pid, _Vars}) -> {M, S, U} = erlang:timestamp(), "
              "lists:flatten(io_lib:format(\"@@@~b,~b;~b;~b@@@\", [erlang:phash2(node()), M, S, U])) end.")


def raw(data: str, ack: str = "no_ack", regexp: str | None = None) -> str:
    match = f" regexp={quoteattr(regexp)}" if regexp else ""
    return f"<request subst=\"true\"><jabber type=\"raw\" ack=\"{ack}\"{match} data={quoteattr(data)}/></request>"


def session(name: str, me: Running, other: str, users: int, rates: list[float], step: int, wait: float) -> str:
    """One side's session: raw login on `me`, presence, wait, then messages to random users of `other`."""
    login = "\n".join([
        raw(STREAM.format(domain=me.domain), "parse", "features"),
        raw("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%%_auth%%</auth>", "parse",
            "success|failure"),
        raw(STREAM.format(domain=me.domain), "parse", "features"),
        raw("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>t</resource>"
            "</bind></iq>", "parse", "jid>|type=.error"),
    ])
    steps = []
    for n, rate in enumerate(rates, 1):
        steps.append(
            f'<for from="1" to="{math.ceil(step * rate)}" var="i{n}">'
            f'<setdynvars sourcetype="random_number" start="1" end="{users}"><var name="peer"/></setdynvars>'
            f'<setdynvars sourcetype="eval" code={quoteattr(STAMP_EVAL)}><var name="stamp"/></setdynvars>'
            + raw(f"<message to='user%%_peer%%@{other}' type='chat'><body>%%_stamp%%</body></message>")
            + f'<thinktime value="{1 / rate:.4f}" random="false"/></for>')
    host, port = me.c2s
    return f"""<session name="{name}" probability="50" type="ts_jabber" bidi="true">
  <change_type new_type="ts_jabber" host="{host}" port="{port}" server_type="tcp" store="false" bidi="true"/>
  <setdynvars sourcetype="file" fileid="users_{name[0]}" delimiter=";" order="iter"><var name="auth"/></setdynvars>
  <transaction name="login_{name[0]}">{login}</transaction>
  {raw("<presence/>")}
  <thinktime value="{wait:.3f}" random="false"/>
  {"".join(steps)}
  <thinktime value="5" random="false"/>
  {raw("</stream:stream>")}
</session>"""


def scenario(run: Path, a: Running, b: Running, users: int, rates: list[float], step: int) -> tuple[str, float, int]:
    """The tsung XML, the offset (s after tsung starts) where messages start, and the load duration."""
    # twice the time the logins need: tsung's launcher lags when the machine is busy, and a phase that
    # ends early launches fewer users (maxnumber stops it at `users`)
    phase = 2 * math.ceil(users / LOGIN_RATE) + 2
    for side in (a, b):
        lines = [base64.b64encode(f"\0user{i}\0{PASSWORD}".encode()).decode() for i in range(1, users + 1)]
        (run / f"{side.domain}.csv").write_text("\n".join(lines) + "\n")
    start = 2 * phase + SETTLE  # both sides wait until then (each session starts at its phase's beginning)
    duration = start + step * len(rates) + 30
    body = f"""<?xml version="1.0"?>
<!DOCTYPE tsung SYSTEM "/usr/share/tsung/tsung-1.0.dtd">
<tsung loglevel="warning" dumptraffic="true" version="1.0">
  <clients><client host="localhost" use_controller_vm="true" maxusers="19000"/></clients>
  <servers><server host="{a.c2s[0]}" port="{a.c2s[1]}" type="tcp"/></servers>
  <load duration="{duration}" unit="second">
    <arrivalphase phase="1" duration="{phase}" unit="second">
      <users maxnumber="{users}" arrivalrate="{LOGIN_RATE}" unit="second"/>
      <session_setup name="{a.domain}" probability="100"/><session_setup name="{b.domain}" probability="0"/>
    </arrivalphase>
    <arrivalphase phase="2" duration="{phase}" unit="second">
      <users maxnumber="{users}" arrivalrate="{LOGIN_RATE}" unit="second"/>
      <session_setup name="{a.domain}" probability="0"/><session_setup name="{b.domain}" probability="100"/>
    </arrivalphase>
  </load>
  <options>
    <option name="file_server" id="users_{a.domain[0]}" value="{run / (a.domain + '.csv')}"/>
    <option name="file_server" id="users_{b.domain[0]}" value="{run / (b.domain + '.csv')}"/>
  </options>
  <sessions>
{session(a.domain, a, b.domain, users, rates, step, start)}
{session(b.domain, b, a.domain, users, rates, step, start - phase)}
  </sessions>
</tsung>
"""
    return body, start, duration


def deliveries(dump: Path) -> tuple[list[tuple[float, float]], list[float]]:
    """(receive time, latency in s) of every stamped message in the data tsung received, and the send
    times of those it sent."""
    found: list[tuple[float, float]] = []
    sends: list[float] = []
    received, incoming = 0.0, False
    with dump.open("rb") as lines:
        for line in lines:
            head = DUMP_LINE.match(line)
            if head:
                incoming, received = head.group(1) == b"Recv", float(head.group(2))
            if not incoming:
                sends.extend(received for _ in STAMP.finditer(line))
                continue
            for stamp in STAMP.finditer(line):  # a chunk may hold many messages and span lines
                sent = int(stamp.group(2)) * 1e6 + int(stamp.group(3)) + int(stamp.group(4)) / 1e6
                found.append((received, received - sent))
    return found, sends


class CpuSampler(threading.Thread):
    """CPU seconds of the servers' process groups over time, so a window's CPU can be read afterwards."""

    def __init__(self, groups: list[int]) -> None:
        super().__init__(daemon=True)
        self.groups, self.samples, self.done = groups, [], threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.samples.append((time.time(), sum(cpu_seconds(g) for g in self.groups)))
            self.done.wait(0.25)

    def between(self, start: float, end: float) -> float:
        def at(moment: float) -> float:
            return min(self.samples, key=lambda sample: abs(sample[0] - moment))[1]
        return at(end) - at(start)


async def measure(kind: str, base: Path, ns: str, users: int, rates: list[float], step: int) -> list[str]:
    async with federating(kind, base, ns, users) as (a, b):
        await open_streams(a, b)  # as in s2s_bench.py: tsung's first messages do not race to open them
        run = base / "tsung"
        run.mkdir(parents=True)
        xml, start, duration = scenario(run, a, b, users, rates, step)
        (run / "scenario.xml").write_text(xml)
        sampler = CpuSampler([r.process.pid for r in (a, b) if r.process is not None])
        sampler.start()
        began = time.time()
        with open(run / "tsung.out", "wb") as out:
            tsung = await asyncio.create_subprocess_exec(
                "timeout", str(duration + 60), "tsung", "-n", "-i", f"s2s{os.getpid()}", "-f",
                str(run / "scenario.xml"), "-l", str(run / "log"), "start", stdout=out, stderr=subprocess.STDOUT)
            await tsung.wait()
        sampler.done.set()
        dumps = list((run / "log").glob("*/tsung.dump"))
        if not dumps:
            raise RuntimeError(f"tsung left no dump: {(run / 'tsung.out').read_text()[-2000:]}")
        found, sends = deliveries(dumps[0])
        rows = []
        for n, rate in enumerate(rates):
            # tsung's start-up (its VM, the controller) delays the sessions: the first delivery of the
            # step marks its real start better than the scenario's offset from `began`
            nominal = began + start + n * step
            firsts = [t for t, _ in found if t >= nominal]
            if not firsts:
                rows.append(f"{kind:<10} {rate * 2 * users:>8.0f} {'nothing delivered':>40}")
                continue
            t0 = min(firsts) + TRIM
            t1 = t0 + step - 2 * TRIM
            window = [lat for t, lat in found if t0 <= t < t1]
            got = len(window) / (t1 - t0)
            put = sum(t0 <= t < t1 for t in sends) / (t1 - t0)
            lat = sorted(window) or [math.nan]
            cpu = sampler.between(t0, t1) / max(len(window), 1) * 1e6
            median, p95 = statistics.median(lat) * 1000, lat[int(len(lat) * 0.95)] * 1000
            rows.append(f"{kind:<10} {rate * 2 * users:>8.0f} {put:>8.0f} {got:>10.0f} {median:>10.1f} {p95:>10.1f} "
                        f"{cpu:>11.0f}")
        rows.append(f"{'':<10} delivered in all {len(found)} of {len(sends)} sent "
                    f"(tsung's logs: {run / 'log'}, kept with --keep)")
        return rows


def inside(args: argparse.Namespace) -> int:
    def rows(kind: str, base: Path) -> list[str]:
        return asyncio.run(asyncio.wait_for(measure(kind, base, args.namespace, args.users, args.rates, args.step),
                                            900))

    return each_kind("s2s-tsung-", [
        f"s2s benchmark (tsung): {args.users} users per side, per-user rates {args.rates} msg/s, {args.step} s "
        f"each; load average {os.getloadavg()[0]:.1f}; {os.cpu_count()} cores",
        f"{'servers':<10} {'offered':>8} {'sent/s':>8} {'msg/s':>10} {'median ms':>10} {'p95 ms':>10} "
        f"{'CPU µs/msg':>11}"], args.servers, rows, keep=args.keep)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50, help="users per side (at most 1000)")
    parser.add_argument("--rates", type=float, nargs="+", default=[5, 10, 20], help="messages/s per user, stepped")
    parser.add_argument("--step", type=int, default=15, help="seconds per rate step (at most 120)")
    parser.add_argument("--servers", nargs="+", default=["parlour", "prosody", "ejabberd"],
                        choices=["parlour", "prosody", "ejabberd"])
    parser.add_argument("--keep", action="store_true", help="keep the state and tsung logs (printed paths)")
    parser.add_argument("--inside", dest="namespace", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.users = max(1, min(args.users, 1000))
    args.step = max(4, min(args.step, 120))
    if args.namespace:
        return inside(args)
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    if shutil.which("tsung") is None:
        print("needs tsung (apt-get install tsung)", file=sys.stderr)
        return 2
    keep = ["--keep"] if args.keep else []
    return in_namespace([sys.executable, __file__, "--users", str(args.users), "--step", str(args.step),
                         "--rates", *map(str, args.rates), "--servers", *args.servers, *keep])


if __name__ == "__main__":
    raise SystemExit(main())
