"""Checks a decision receipt offline with the server's public key (its
SHA-256 is the ID token's `eid_receipt_sha256`), as a service provider does when it keeps the receipt as
evidence: the signed bytes are the canonical encoding of docs/protocol.md
(the `receipt` row), signed with ECDSA P-256 / SHA-256."""

import base64
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

RECEIPT_DOMAIN = b"eid-authenticator/v1/receipt"
# A receipt with a `call_context` (protocol version 2) has its own domain and
# the context's four bytes after the v1 fields.
RECEIPT_DOMAIN_V2 = b"eid-authenticator/v2/receipt"
SIGNALS = {"unknown": 0, "off": 1, "on": 2}
OUTCOMES = {"approve": 1, "deny": 2, "report_fraud": 3}
KINDS = {"login": 1, "signature": 2, "self_service": 3, "new_device": 4}


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signing_bytes(body):
    """The canonical bytes of a receipt body: a length-prefixed domain tag,
    then the fields in their fixed order (ids as 16 raw bytes, times and the
    counter as big-endian u64)."""
    context = body.get("call_context")
    domain = RECEIPT_DOMAIN if context is None else RECEIPT_DOMAIN_V2
    tail = b"" if context is None else bytes([
        SIGNALS[context["call"]], SIGNALS[context["screen_shared"]],
        SIGNALS[context["remote_control"]], 1 if context["confirmed_self_started"] else 0])
    return b"".join([
        bytes([len(domain)]), domain,
        bytes.fromhex(body["request_id"]),
        bytes.fromhex(body["identity_id"]),
        bytes.fromhex(body["authenticator_id"]),
        bytes([OUTCOMES[body["outcome"]], KINDS[body["kind"]]]),
        b64url(body["reference_text_sha256"]),
        bytes.fromhex(body["service_provider_id"]),
        struct.pack(">Q", body["decided_at_ms"]),
        b64url(body["decision_sha256"]),
        struct.pack(">Q", body["counter"]),
        tail,
    ])


def verify(signed, server_public_key):
    """Raises cryptography's InvalidSignature unless `signed` ({receipt,
    signature}) is signed by `server_public_key` (SEC1, base64url, as
    `/v1/server-key` gives it)."""
    key = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), b64url(server_public_key))
    key.verify(b64url(signed["signature"]),
               signing_bytes(signed["receipt"]), ec.ECDSA(hashes.SHA256()))
