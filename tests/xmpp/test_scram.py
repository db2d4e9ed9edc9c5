"""SCRAM server: RFC test vectors, a hand-written client, channel binding and failure modes."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

import pytest

from appliance.xmpp.sasl import SaslFailure
from appliance.xmpp.sasl.scram import (
    HASHES,
    ScramServer,
    derive_keys,
    keys_from_salted_password,
    mechanism_names,
    parse_mechanism,
    salted_password,
)

CERT_HASH = bytes(range(32))  # stands in for the tls-server-end-point certificate hash
EXPORTER = b"\x42" * 32


@dataclass(frozen=True)
class Keys:
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def make_keys(password: str, hash_name: str, salt: bytes, iterations: int = 4096) -> Keys:
    stored_key, server_key = derive_keys(password, hash_name, salt, iterations)
    return Keys(salt, iterations, stored_key, server_key)


class Client:
    """A minimal SCRAM client, written from RFC 5802 §3 independently of the server code."""

    def __init__(
        self,
        hash_name: str,
        username: str,
        password: str,
        gs2_header: str = "n,,",
        cb_data: bytes = b"",
        nonce: str = "clientnonce123",
    ) -> None:
        self.digest = HASHES[hash_name]
        self.password = password
        self.gs2_header = gs2_header
        self.cb_data = cb_data
        self.bare = f"n={username.replace('=', '=3D').replace(',', '=2C')},r={nonce}"
        self.server_signature = b""

    def first(self) -> bytes:
        return (self.gs2_header + self.bare).encode()

    def final(self, server_first: bytes, *, tamper_proof: bool = False) -> bytes:
        attrs = dict(item.split("=", 1) for item in server_first.decode().split(","))
        salted = hashlib.pbkdf2_hmac(
            self.digest, self.password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"])
        )
        client_key = hmac.digest(salted, b"Client Key", self.digest)
        stored_key = hashlib.new(self.digest, client_key).digest()
        channel = base64.b64encode(self.gs2_header.encode() + self.cb_data).decode()
        without_proof = f"c={channel},r={attrs['r']}"
        auth_message = f"{self.bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.digest(stored_key, auth_message, self.digest)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        if tamper_proof:
            proof = bytes([proof[0] ^ 1]) + proof[1:]
        server_key = hmac.digest(salted, b"Server Key", self.digest)
        self.server_signature = hmac.digest(server_key, auth_message, self.digest)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()


def run(server: ScramServer, client: Client, keys: Keys | None) -> bytes:
    server.first(client.first())
    return server.final(client.final(server.challenge(keys)))


# -- RFC test vectors ---------------------------------------------------------------------------


def test_rfc5802_sha1_vector() -> None:
    keys = make_keys("pencil", "SHA-1", base64.b64decode("QSXCR+Q6sek8bf92"))
    server = ScramServer("SHA-1", plus=False, channel_bindings={}, nonce="3rfcNHYJY1ZVvWVs7j")
    assert server.first(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL") == "user"
    assert server.challenge(keys) == b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
    final = server.final(
        b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
    )
    assert final == b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="
    assert server.succeeded
    assert server.authzid is None


def test_rfc7677_sha256_vector() -> None:
    keys = make_keys("pencil", "SHA-256", base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="))
    server = ScramServer("SHA-256", plus=False, channel_bindings={}, nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    assert server.first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO") == "user"
    assert server.challenge(keys) == (
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    )
    final = server.final(
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    )
    assert final == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_rfc7677_vector_with_wrong_password_fails() -> None:
    keys = make_keys("pen", "SHA-256", base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="))
    server = ScramServer("SHA-256", plus=False, channel_bindings={}, nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    server.first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    server.challenge(keys)
    with pytest.raises(SaslFailure) as failure:
        server.final(
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
            b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        )
    assert failure.value.condition == "not-authorized"
    assert not server.succeeded


# -- round trips with the test client -------------------------------------------------------------


@pytest.mark.parametrize("hash_name", ["SHA-1", "SHA-256", "SHA-512"])
def test_round_trip(hash_name: str) -> None:
    keys = make_keys("correct horse", hash_name, b"0123456789abcdef", iterations=4096)
    client = Client(hash_name, "juliet", "correct horse")
    server = ScramServer(hash_name, plus=False, channel_bindings={})
    final = run(server, client, keys)
    assert final == b"v=" + base64.b64encode(client.server_signature)
    assert server.username == "juliet"
    assert server.mechanism == f"SCRAM-{hash_name}"


def test_sha512_wrong_password_is_not_authorized() -> None:
    keys = make_keys("secret", "SHA-512", b"saltsaltsaltsalt")
    server = ScramServer("SHA-512", plus=False, channel_bindings={})
    with pytest.raises(SaslFailure) as failure:
        run(server, Client("SHA-512", "juliet", "Secret"), keys)
    assert failure.value.condition == "not-authorized"


def test_tampered_proof_is_not_authorized() -> None:
    keys = make_keys("secret", "SHA-256", b"saltsaltsaltsalt")
    client = Client("SHA-256", "juliet", "secret")
    server = ScramServer("SHA-256", plus=False, channel_bindings={})
    server.first(client.first())
    with pytest.raises(SaslFailure) as failure:
        server.final(client.final(server.challenge(keys), tamper_proof=True))
    assert failure.value.condition == "not-authorized"


def test_username_and_authzid_escapes_are_decoded() -> None:
    keys = make_keys("pw", "SHA-256", b"saltsaltsaltsalt")
    client = Client("SHA-256", "a,b=c", "pw", gs2_header="n,a=x=2Cy=3Dz,")
    server = ScramServer("SHA-256", plus=False, channel_bindings={})
    assert server.first(client.first()) == "a,b=c"
    assert server.authzid == "x,y=z"
    server.final(client.final(server.challenge(keys)))
    assert server.succeeded


def test_nonce_mismatch_is_not_authorized() -> None:
    keys = make_keys("pw", "SHA-256", b"saltsaltsaltsalt")
    client = Client("SHA-256", "juliet", "pw")
    server = ScramServer("SHA-256", plus=False, channel_bindings={})
    server.first(client.first())
    server_first = server.challenge(keys)
    forged = server_first.replace(b"r=clientnonce123", b"r=clientnonce124")
    with pytest.raises(SaslFailure) as failure:
        server.final(client.final(forged))
    assert failure.value.condition == "not-authorized"


def test_server_nonce_is_random_and_extends_the_client_nonce() -> None:
    nonces = set()
    for _ in range(3):
        server = ScramServer("SHA-256", plus=False, channel_bindings={})
        server.first(b"n,,n=u,r=abc")
        reply = server.challenge(None).decode()
        nonce = reply.split(",")[0][2:]
        assert nonce.startswith("abc") and len(nonce) >= 3 + 24
        nonces.add(nonce)
    assert len(nonces) == 3


# -- channel binding ------------------------------------------------------------------------------


def plus_server(hash_name: str = "SHA-256") -> ScramServer:
    bindings = {"tls-server-end-point": CERT_HASH, "tls-exporter": EXPORTER}
    return ScramServer(hash_name, plus=True, channel_bindings=bindings)


@pytest.mark.parametrize(
    ("cb_type", "data"), [("tls-server-end-point", CERT_HASH), ("tls-exporter", EXPORTER)]
)
def test_plus_with_matching_binding(cb_type: str, data: bytes) -> None:
    keys = make_keys("pw", "SHA-256", b"saltsaltsaltsalt")
    client = Client("SHA-256", "juliet", "pw", gs2_header=f"p={cb_type},,", cb_data=data)
    server = plus_server()
    assert run(server, client, keys) == b"v=" + base64.b64encode(client.server_signature)
    assert server.cb_type == cb_type
    assert server.mechanism == "SCRAM-SHA-256-PLUS"


def test_plus_with_wrong_binding_data_fails() -> None:
    keys = make_keys("pw", "SHA-256", b"saltsaltsaltsalt")
    client = Client("SHA-256", "juliet", "pw", gs2_header="p=tls-server-end-point,,", cb_data=b"\x00" * 32)
    server = plus_server()
    with pytest.raises(SaslFailure) as failure:
        run(server, client, keys)
    assert failure.value.condition == "not-authorized"
    assert not server.succeeded


def test_plus_with_binding_data_of_the_other_type_fails() -> None:
    keys = make_keys("pw", "SHA-256", b"saltsaltsaltsalt")
    client = Client("SHA-256", "juliet", "pw", gs2_header="p=tls-server-end-point,,", cb_data=EXPORTER)
    with pytest.raises(SaslFailure) as failure:
        run(plus_server(), client, keys)
    assert failure.value.condition == "not-authorized"


def test_plus_with_unoffered_binding_type_fails() -> None:
    server = ScramServer("SHA-256", plus=True, channel_bindings={"tls-server-end-point": CERT_HASH})
    with pytest.raises(SaslFailure) as failure:
        server.first(b"p=tls-unique,,n=juliet,r=abc")
    assert failure.value.condition == "not-authorized"


def test_plus_mechanism_without_binding_flag_fails() -> None:
    with pytest.raises(SaslFailure) as failure:
        plus_server().first(b"n,,n=juliet,r=abc")
    assert failure.value.condition == "malformed-request"


def test_binding_flag_on_plain_scram_fails() -> None:
    server = ScramServer("SHA-256", plus=False, channel_bindings={"tls-server-end-point": CERT_HASH})
    with pytest.raises(SaslFailure) as failure:
        server.first(b"p=tls-server-end-point,,n=juliet,r=abc")
    assert failure.value.condition == "malformed-request"


def test_downgrade_is_detected() -> None:
    """'y' says "I could bind but you did not offer -PLUS": false when we did offer it."""
    server = ScramServer("SHA-256", plus=False, channel_bindings={"tls-server-end-point": CERT_HASH})
    with pytest.raises(SaslFailure) as failure:
        server.first(b"y,,n=juliet,r=abc")
    assert failure.value.condition == "not-authorized"


def test_y_flag_accepted_when_plus_is_not_offered() -> None:
    keys = make_keys("pw", "SHA-1", b"saltsaltsaltsalt")
    client = Client("SHA-1", "juliet", "pw", gs2_header="y,,")
    server = ScramServer("SHA-1", plus=False, channel_bindings={})
    assert run(server, client, keys) == b"v=" + base64.b64encode(client.server_signature)


def test_channel_binding_header_must_match_what_was_sent_first() -> None:
    """c= must repeat the gs2 header: a client cannot switch from 'y' to 'n' between messages."""
    keys = make_keys("pw", "SHA-1", b"saltsaltsaltsalt")
    client = Client("SHA-1", "juliet", "pw", gs2_header="y,,")
    server = ScramServer("SHA-1", plus=False, channel_bindings={})
    server.first(client.first())
    client.gs2_header = "n,,"
    with pytest.raises(SaslFailure) as failure:
        server.final(client.final(server.challenge(keys)))
    assert failure.value.condition == "not-authorized"


def test_plus_needs_binding_data() -> None:
    with pytest.raises(ValueError):
        ScramServer("SHA-256", plus=True, channel_bindings={})


# -- unknown users ------------------------------------------------------------------------------


def fake_challenge(username: str, secret: bytes = b"server secret", hash_name: str = "SHA-256") -> str:
    server = ScramServer(hash_name, plus=False, channel_bindings={}, fake_secret=secret)
    server.first(f"n,,n={username},r=abc".encode())
    return server.challenge(None).decode()


def salt_of(server_first: str) -> str:
    return server_first.split(",")[1]


def test_fake_salt_is_stable_per_user() -> None:
    assert salt_of(fake_challenge("nobody")) == salt_of(fake_challenge("nobody"))
    assert salt_of(fake_challenge("nobody")) != salt_of(fake_challenge("someone"))
    assert salt_of(fake_challenge("nobody")) != salt_of(fake_challenge("nobody", secret=b"other secret"))
    assert len(base64.b64decode(salt_of(fake_challenge("nobody"))[2:])) == 16
    assert fake_challenge("nobody").endswith(",i=4096")


def test_unknown_user_fails_even_with_a_matching_proof() -> None:
    server = ScramServer("SHA-256", plus=False, channel_bindings={}, fake_secret=b"s")
    client = Client("SHA-256", "nobody", "pw")
    server.first(client.first())
    with pytest.raises(SaslFailure) as failure:
        server.final(client.final(server.challenge(None)))
    assert failure.value.condition == "not-authorized"


def test_unknown_user_uses_configured_iterations() -> None:
    server = ScramServer("SHA-1", plus=False, channel_bindings={}, fake_iterations=10000)
    server.first(b"n,,n=nobody,r=abc")
    assert server.challenge(None).endswith(b",i=10000")


# -- malformed input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"n,,",
        b"n=juliet,r=abc",
        b"x,,n=juliet,r=abc",
        b"n,b=other,n=juliet,r=abc",
        b"n,,r=abc,n=juliet",
        b"n,,n=,r=abc",
        b"n,,n=ju=41liet,r=abc",
        b"n,,n=juliet,r=",
        b"n,,n=juliet,r=a\x80c",
        b"n,,m=ext,n=juliet,r=abc",
        b"n,,n=juliet,r=abc,not-an-attribute",
        b"p=bad type,,n=juliet,r=abc",
        b"n,,n=juliet,r=" + b"a" * 9000,
        b"n,,n=\xff,r=abc",
    ],
)
def test_malformed_client_first(message: bytes) -> None:
    server = ScramServer("SHA-256", plus=False, channel_bindings={})
    with pytest.raises(SaslFailure) as failure:
        server.first(message)
    assert failure.value.condition == "malformed-request"
    with pytest.raises(RuntimeError):
        server.challenge(None)  # a failed exchange stays failed


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"c=biws",
        b"r=abcSERVER,c=biws,p=AAAA",
        b"c=biws,r=abcSERVER",
        b"c=biws,r=abcSERVER,p=not base64!",
        b"c=***,r=abcSERVER,p=" + base64.b64encode(bytes(32)),
        b"c=biws,r=abcSERVER,p=" + base64.b64encode(bytes(20)),
        b"c=biws,r=abcSERVER,p=" + base64.b64encode(bytes(32)) + b",x=trailing",
    ],
)
def test_malformed_client_final(message: bytes) -> None:
    server = ScramServer("SHA-256", plus=False, channel_bindings={}, nonce="SERVER")
    server.first(b"n,,n=juliet,r=abc")
    server.challenge(make_keys("pw", "SHA-256", b"saltsaltsaltsalt", iterations=1))
    with pytest.raises(SaslFailure) as failure:
        server.final(message)
    assert failure.value.condition == "malformed-request"


def test_steps_out_of_order_are_a_programming_error() -> None:
    server = ScramServer("SHA-256", plus=False, channel_bindings={})
    with pytest.raises(RuntimeError):
        server.challenge(None)
    server.first(b"n,,n=juliet,r=abc")
    with pytest.raises(RuntimeError):
        server.first(b"n,,n=juliet,r=abc")


def test_keys_of_another_hash_are_refused() -> None:
    server = ScramServer("SHA-256", plus=False, channel_bindings={})
    server.first(b"n,,n=juliet,r=abc")
    with pytest.raises(ValueError):
        server.challenge(make_keys("pw", "SHA-1", b"saltsaltsaltsalt", iterations=1))


# -- key derivation and mechanism lists ---------------------------------------------------------


def test_derive_keys_matches_the_rfc_vector() -> None:
    """StoredKey/ServerKey as a SCRAM-SHA-1 server would store them for the RFC 5802 example."""
    salt = base64.b64decode("QSXCR+Q6sek8bf92")
    salted = salted_password("pencil", "SHA-1", salt, 4096)
    assert salted.hex() == "1d96ee3a529b5a5f9e47c01f229a2cb8a6e15f7d"
    assert derive_keys("pencil", "SHA-1", salt, 4096) == keys_from_salted_password("SHA-1", salted)


def test_password_is_prepared_as_opaque_string() -> None:
    salt = b"saltsaltsaltsalt"
    # OpaqueString maps non-ASCII spaces to U+0020 and applies NFC.
    assert derive_keys("a\u00a0b", "SHA-256", salt, 1) == derive_keys("a b", "SHA-256", salt, 1)
    assert derive_keys("e\u0301", "SHA-256", salt, 1) == derive_keys("\u00e9", "SHA-256", salt, 1)
    with pytest.raises(ValueError):
        derive_keys("", "SHA-256", salt, 1)
    with pytest.raises(ValueError):
        derive_keys("bell\x07", "SHA-256", salt, 1)
    with pytest.raises(ValueError):
        derive_keys("pw", "MD5", salt, 1)


def test_mechanism_names() -> None:
    bindings = {"tls-server-end-point": CERT_HASH}
    assert mechanism_names(True, bindings) == [
        "SCRAM-SHA-512-PLUS",
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-512",
        "SCRAM-SHA-256",
        "SCRAM-SHA-1",
        "PLAIN",
    ]
    assert mechanism_names(False, {}) == ["SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1"]
    assert mechanism_names(True, {})[-1] == "PLAIN"


def test_parse_mechanism() -> None:
    assert parse_mechanism("SCRAM-SHA-256-PLUS") == ("SHA-256", True)
    assert parse_mechanism("SCRAM-SHA-1") == ("SHA-1", False)
    for name in ("PLAIN", "SCRAM-MD5", "SCRAM-SHA-256-PLUS-PLUS", "scram-sha-1"):
        with pytest.raises(SaslFailure) as failure:
            parse_mechanism(name)
        assert failure.value.condition == "invalid-mechanism"
