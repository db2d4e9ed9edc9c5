"""The c2s stream machine alone (no sockets, no router): parser + machine per stanza on a bound stream.

    python benchmarks/stream_machine.py --stanzas 200000

Prints microseconds per chat message for the parser alone (one message per read, and 400 per read:
the cost per message should not grow with the read) and for parser + machine (the READY hot
path: a stanza in, checked and stamped, handed back as the route effect), so the machine's share of
a message's server CPU can be read off. Everything runs in this process on one core.
"""

from __future__ import annotations

import argparse
import time

from appliance.xmpp import effects as fx
from appliance.xmpp.jid import JID
from appliance.xmpp.machine import C2S, Offer, State, StreamMachine
from appliance.xmpp.parser import Stanza, StreamParser

HEADER = (
    b"<?xml version='1.0'?><stream:stream to='bench.local' xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
)
MESSAGE = b"<message to='user2@bench.local/tsung' type='chat' id='m'><body>" + b"x" * 64 + b"</body></message>"


AUTH = b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AHVzZXIxAHBhc3M=</auth>"
BIND = b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"


def bound_machine() -> tuple[StreamMachine, StreamParser]:
    """A machine and parser past PLAIN and bind, driven the way core/c2s drives them."""
    machine = StreamMachine(C2S, ["bench.local"])
    parser = StreamParser()
    for data in (HEADER + AUTH, HEADER + BIND):
        machine.receive(parser.feed(data))
        while (effect := machine.next_effect()) is not None:
            if effect is fx.FEATURES:
                machine.features(Offer(mechanisms=("PLAIN",)))
            elif isinstance(effect, fx.Authenticate):
                machine.sasl_success(JID.make("user1", "bench.local", None))  # the driver checked the password
            elif effect is fx.RESTART:
                parser.reset()
            elif isinstance(effect, fx.Bind):
                machine.bound(effect.jid, effect.iq)
    return machine, parser


def main() -> int:
    parser_args = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser_args.add_argument("--stanzas", type=int, default=200_000)
    args = parser_args.parse_args()
    n = min(args.stanzas, 5_000_000)

    parser = StreamParser()
    parser.feed(HEADER)
    started = time.process_time()
    for _ in range(n):
        parser.feed(MESSAGE)
    parse_only = (time.process_time() - started) / n * 1e6

    parser = StreamParser(max_stanza_size=1 << 30)
    parser.feed(HEADER)
    burst = MESSAGE * 400  # one 60 KB read: a client (or a server link) that sends in bursts
    started = time.process_time()
    for _ in range(max(1, n // 400)):
        parser.feed(burst)
    parse_burst = (time.process_time() - started) / (max(1, n // 400) * 400) * 1e6

    machine, parser = bound_machine()
    assert machine.state is State.READY
    started = time.process_time()
    for _ in range(n):
        machine.receive(parser.feed(MESSAGE))
        effect = machine.next_effect()
        assert effect.__class__ is Stanza
        machine.stanza_handled()
    both = (time.process_time() - started) / n * 1e6
    print(f"parser alone:     {parse_only:6.2f} us per message ({parse_burst:.2f} us in reads of 400 messages)")
    print(f"parser + machine: {both:6.2f} us per message (machine: {both - parse_only:.2f} us)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
