"""XML namespace names used across Parlour, one constant each."""

from __future__ import annotations

# RFC 6120 core: streams, stanzas, stream features.
NS_CLIENT = "jabber:client"
NS_SERVER = "jabber:server"
NS_COMPONENT = "jabber:component:accept"  # XEP-0114
NS_STREAM = "http://etherx.jabber.org/streams"
NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_XML = "http://www.w3.org/XML/1998/namespace"
NS_DIALBACK = "jabber:server:dialback"  # XEP-0220
NS_DIALBACK_FEATURE = "urn:xmpp:features:dialback"
NS_BIDI = "urn:xmpp:bidi"  # XEP-0288
NS_BIDI_FEATURE = "urn:xmpp:features:bidi"
NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"  # RFC 7395 WebSocket
NS_BOSH = "http://jabber.org/protocol/httpbind"  # XEP-0124
NS_XBOSH = "urn:xmpp:xbosh"  # XEP-0206
NS_SASL2 = "urn:xmpp:sasl:2"  # XEP-0388
NS_BIND2 = "urn:xmpp:bind:0"  # XEP-0386
NS_FAST = "urn:xmpp:fast:0"  # XEP-0484
NS_SM = "urn:xmpp:sm:3"  # XEP-0198
NS_CSI = "urn:xmpp:csi:0"  # XEP-0352
NS_SASL_CB = "urn:xmpp:sasl-cb:0"  # XEP-0440
NS_STREAM_LIMITS = "urn:xmpp:stream-limits:0"  # XEP-0478

# RFC 6121 roster and presence.
NS_ROSTER = "jabber:iq:roster"
NS_ROSTERVER = "urn:xmpp:features:rosterver"
NS_PREAPPROVAL = "urn:xmpp:features:pre-approval"

# Service discovery and entity information.
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"  # XEP-0030
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_CAPS = "http://jabber.org/protocol/caps"  # XEP-0115
NS_DATA = "jabber:x:data"  # XEP-0004
NS_SERVERINFO = "http://jabber.org/network/serverinfo"  # XEP-0157
NS_SOS = "urn:xmpp:sos:0"  # XEP-0455
NS_EXTDISCO = "urn:xmpp:extdisco:2"  # XEP-0215

# Simple IQ services.
NS_PING = "urn:xmpp:ping"  # XEP-0199
NS_VERSION = "jabber:iq:version"  # XEP-0092
NS_TIME = "urn:xmpp:time"  # XEP-0202
NS_LAST = "jabber:iq:last"  # XEP-0012
NS_VCARD = "vcard-temp"  # XEP-0054
NS_VCARD_UPDATE = "vcard-temp:x:update"  # XEP-0153
NS_VCARD4 = "urn:ietf:params:xml:ns:vcard-4.0"  # XEP-0292
NS_PRIVATE = "jabber:iq:private"  # XEP-0049
NS_BLOCKING = "urn:xmpp:blocking"  # XEP-0191
NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"
NS_REGISTER = "jabber:iq:register"  # XEP-0077
NS_REGISTER_FEATURE = "http://jabber.org/features/iq-register"
NS_PREAUTH = "urn:xmpp:pars:0"  # XEP-0379 / XEP-0445 preauth token
NS_IBR_TOKEN = "urn:xmpp:ibr-token:0"  # XEP-0445 stream feature
NS_INVITE = "urn:xmpp:invite"  # XEP-0401 stream feature and ad-hoc command nodes
NS_COMMANDS = "http://jabber.org/protocol/commands"  # XEP-0050
NS_UPLOAD = "urn:xmpp:http:upload:0"  # XEP-0363
NS_BYTESTREAMS = "http://jabber.org/protocol/bytestreams"  # XEP-0065
NS_PUSH = "urn:xmpp:push:0"  # XEP-0357

# Message payloads and archiving.
NS_DELAY = "urn:xmpp:delay"  # XEP-0203
NS_FORWARD = "urn:xmpp:forward:0"  # XEP-0297
NS_CARBONS = "urn:xmpp:carbons:2"  # XEP-0280
NS_RECEIPTS = "urn:xmpp:receipts"  # XEP-0184
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"  # XEP-0085
NS_MARKERS = "urn:xmpp:chat-markers:0"  # XEP-0333
NS_CORRECTION = "urn:xmpp:message-correct:0"  # XEP-0308
NS_HINTS = "urn:xmpp:hints"  # XEP-0334
NS_MAM = "urn:xmpp:mam:2"  # XEP-0313
NS_RSM = "http://jabber.org/protocol/rsm"  # XEP-0059
NS_STANZA_ID = "urn:xmpp:sid:0"  # XEP-0359
NS_XHTML_IM = "http://jabber.org/protocol/xhtml-im"  # XEP-0071
NS_XHTML = "http://www.w3.org/1999/xhtml"
NS_NICK = "http://jabber.org/protocol/nick"  # XEP-0172
NS_OOB = "jabber:x:oob"  # XEP-0066
NS_ADDRESS = "http://jabber.org/protocol/address"  # XEP-0033

# Publish-subscribe, PEP and group chat.
NS_PUBSUB = "http://jabber.org/protocol/pubsub"  # XEP-0060
NS_PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_PUBSUB_OWNER = "http://jabber.org/protocol/pubsub#owner"
NS_PUBSUB_ERRORS = "http://jabber.org/protocol/pubsub#errors"
NS_BOOKMARKS2 = "urn:xmpp:bookmarks:1"  # XEP-0402
NS_AVATAR_DATA = "urn:xmpp:avatar:data"  # XEP-0084
NS_AVATAR_METADATA = "urn:xmpp:avatar:metadata"
NS_MUC = "http://jabber.org/protocol/muc"  # XEP-0045
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_MUC_ADMIN = "http://jabber.org/protocol/muc#admin"
NS_MUC_OWNER = "http://jabber.org/protocol/muc#owner"
NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0"  # XEP-0421
