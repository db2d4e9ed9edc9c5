"""Client sessions: the driver of the c2s stream machine (`xmpp.machine`), whatever the transport.

The machine owns the stream's state and every transition: stream header and features, STARTTLS,
SASL/SASL2 steps, binding and Bind 2, the stream-management counters (XEP-0198) and client state
(XEP-0352) elements. These modules carry out the effects it returns:

  session.py         ClientSession: intake, the effect loop, binding, output, closing, hibernation
  authentication.py  runs SASL mechanisms against the account store; failure limits per IP and account
  features.py        the Offer of each state (configuration, the host's modules, TLS)
  sasl2.py           SASL2 success with inline resumption, Bind 2 and FAST tokens
  resumption.py      finding a resumable session and moving a connection over to it
  transport.py       the Transport interface and the stand-ins of detached sessions
  services.py        C2SServices, what all sessions share
  housekeeping.py    sweep (timeouts, pings, hibernation) and settle

A transport (TCP, BOSH, WebSocket) parses bytes into events in its framing and hands them to
`ClientSession.receive`; the session answers through the small `Transport` interface. Events are
processed in order by a worker task that exists only while there is work, so an idle session
costs no task.

Stream management: a session that enabled resumption outlives its connection. When the transport
goes away without a stream close, the session hibernates: it stays bound and available, and what
is sent to it is queued, until a new connection resumes it (the new transport is moved into this
same object, so nothing that holds a reference to the session notices) or `sweep` finds the
resumption window over. A session that ends for good hands its unacknowledged messages to
`stream_management.reroute_unacked`.
"""

from appliance.core.c2s.housekeeping import settle, sweep
from appliance.core.c2s.services import C2SServices
from appliance.core.c2s.session import ClientSession
from appliance.core.c2s.transport import Transport

__all__ = ["C2SServices", "ClientSession", "Transport", "settle", "sweep"]
