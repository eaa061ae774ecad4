"""Protocol v1 written from docs/protocol.md alone, without the Rust code:
the wire encodings, the canonical bytes of every signed message, the ECDSA
P-256 verification rule (high-S accepted) and the rotating binding code.

Everything here follows the document's words, so a test that fails means
the document and the implementation disagree."""

import base64
import hashlib
import hmac
import re
import struct

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

# The order n of the P-256 group: a signature's s is "low" when s <= n / 2.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

DOMAINS = {
    "request_envelope": "eid-authenticator/v1/request-envelope",
    "device_request": "eid-authenticator/v1/device-request",
    "decision": "eid-authenticator/v1/decision",
    "receipt": "eid-authenticator/v1/receipt",
    "activation": "eid-authenticator/v1/activation",
    "device_enrolment": "eid-authenticator/v1/device-enrolment",
    "settings_change": "eid-authenticator/v1/settings-change",
    "hardware_receipt": "eid-authenticator/v1/hardware-receipt",
}
# Protocol version 2 (docs/protocol.md, "Call context"): a decision or
# receipt with a `call_context` has its own domain and four more bytes.
DOMAINS_V2 = {
    "decision": "eid-authenticator/v2/decision",
    "receipt": "eid-authenticator/v2/receipt",
}
SIGNALS = {"unknown": 0, "off": 1, "on": 2}
KINDS = {"login": 1, "signature": 2, "self_service": 3, "new_device": 4, "code_device": 5}
OUTCOMES = {"approve": 1, "deny": 2, "report_fraud": 3}
BINDING_DOMAIN = b"eid-authenticator/v1/binding-rotating"

_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


# ------------------------------------------------------------ wire encodings

def b64url(text):
    """Unpadded base64url, strictly: padding or other alphabets are errors."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError(f"not unpadded base64url: {text!r}")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hex16(text):
    """An id or a 16-byte nonce on the wire: 32 lowercase hex digits."""
    if not _HEX32.fullmatch(text):
        raise ValueError(f"not 32 lowercase hex digits: {text!r}")
    return bytes.fromhex(text)


def fixed(data, length):
    if len(data) != length:
        raise ValueError(f"expected {length} bytes, got {len(data)}")
    return data


# ------------------------------------------------------- canonical encoding

class Writer:
    """`len(domain) as u8 || domain || fields`, each field as the table of
    docs/protocol.md "Canonical encoding" says."""

    def __init__(self, domain):
        raw = domain.encode("ascii")
        self.parts = [bytes([len(raw)]), raw]

    def u8(self, value):
        self.parts.append(struct.pack(">B", value))
        return self

    def u64(self, value):
        self.parts.append(struct.pack(">Q", value))
        return self

    def fixed(self, data, length):
        self.parts.append(fixed(data, length))
        return self

    def str(self, text):
        raw = text.encode("utf-8")  # exact UTF-8 bytes, no normalization
        self.parts.append(struct.pack(">I", len(raw)) + raw)
        return self

    def opt_str(self, text):
        if text is None:
            self.parts.append(b"\x00")
        else:
            self.parts.append(b"\x01")
            self.str(text)
        return self

    def bool(self, value):
        if not isinstance(value, bool):
            raise ValueError(f"not a bool: {value!r}")
        self.parts.append(b"\x01" if value else b"\x00")
        return self

    def finish(self):
        return b"".join(self.parts)


def reference_text_sha256(text):
    """SHA-256 of the reference text's exact UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def signing_bytes(message):
    """The canonical bytes of a message given as its JSON fields plus
    `type` (the vector file's form; the same names as on the wire)."""
    kind = message["type"]
    context = message.get("call_context") if kind in DOMAINS_V2 else None
    w = Writer(DOMAINS[kind] if context is None else DOMAINS_V2[kind])
    m = message
    if kind == "request_envelope":
        (w.fixed(hex16(m["request_id"]), 16)
         .fixed(hex16(m["identity_id"]), 16)
         .u8(KINDS[m["kind"]])
         .fixed(hex16(m["service_provider_id"]), 16)
         .str(m["service_provider_name"])
         .str(m["reference_text"])
         .u64(m["created_at_ms"])
         .u64(m["expires_at_ms"])
         .fixed(b64url(m["server_nonce"]), 32)
         .bool(m["binding_required"]))
    elif kind == "device_request":
        (w.fixed(hex16(m["authenticator_id"]), 16)
         .str(m["method"])
         .str(m["path"])
         .fixed(b64url(m["body_sha256"]), 32)
         .u64(m["timestamp_ms"])
         .fixed(hex16(m["nonce"]), 16))
    elif kind == "decision":
        (w.fixed(hex16(m["request_id"]), 16)
         .fixed(hex16(m["identity_id"]), 16)
         .fixed(hex16(m["authenticator_id"]), 16)
         .u8(OUTCOMES[m["outcome"]])
         .u8(KINDS[m["kind"]])
         .fixed(b64url(m["reference_text_sha256"]), 32)
         .fixed(hex16(m["service_provider_id"]), 16)
         .str(m["service_provider_name"])
         .u64(m["expires_at_ms"])
         .fixed(b64url(m["server_nonce"]), 32)
         .opt_str(m.get("binding_code"))
         .u64(m["counter"]))
    elif kind == "receipt":
        (w.fixed(hex16(m["request_id"]), 16)
         .fixed(hex16(m["identity_id"]), 16)
         .fixed(hex16(m["authenticator_id"]), 16)
         .u8(OUTCOMES[m["outcome"]])
         .u8(KINDS[m["kind"]])
         .fixed(b64url(m["reference_text_sha256"]), 32)
         .fixed(hex16(m["service_provider_id"]), 16)
         .u64(m["decided_at_ms"])
         .fixed(b64url(m["decision_sha256"]), 32)
         .u64(m["counter"]))
    elif kind in ("activation", "device_enrolment"):
        (w.str(m["user_id"])
         .fixed(b64url(m["device_public_key"]), 65)
         .fixed(b64url(m["pin_public_key"]), 65))
    elif kind == "settings_change":
        (w.fixed(hex16(m["authenticator_id"]), 16)
         .bool(m["notify_every_use"])
         .u64(m["issued_at_ms"])
         .fixed(hex16(m["nonce"]), 16))
    elif kind == "hardware_receipt":
        (w.fixed(hex16(m["login_id"]), 16)
         .fixed(hex16(m["identity_id"]), 16)
         .str(m["method"])
         .fixed(b64url(m["authenticator_sha256"]), 32)
         .fixed(hex16(m["service_provider_id"]), 16)
         .u64(m["completed_at_ms"]))
    else:
        raise ValueError(f"unknown message type {kind!r}")
    if context is not None:
        (w.u8(SIGNALS[context["call"]])
         .u8(SIGNALS[context["screen_shared"]])
         .u8(SIGNALS[context["remote_control"]])
         .bool(context["confirmed_self_started"]))
    return w.finish()


# --------------------------------------------------------------- signatures

def public_key(sec1_b64url):
    """A SEC1 uncompressed P-256 point (65 bytes, 0x04 || X || Y)."""
    raw = fixed(b64url(sec1_b64url), 65)
    if raw[0] != 0x04:
        raise ValueError("not an uncompressed point")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)


def der_r_s(signature):
    """(r, s) of a DER ECDSA signature: SEQUENCE { INTEGER r, INTEGER s }."""
    def integer(data, at):
        if data[at] != 0x02 or data[at + 1] > 33:
            raise ValueError("not a DER INTEGER")
        end = at + 2 + data[at + 1]
        return int.from_bytes(data[at + 2:end], "big"), end

    if len(signature) > 72 or signature[0] != 0x30 or signature[1] != len(signature) - 2:
        raise ValueError("not a DER ECDSA signature")
    r, at = integer(signature, 2)
    s, at = integer(signature, at)
    if at != len(signature):
        raise ValueError("trailing bytes after the signature")
    return r, s


def is_high_s(signature):
    return der_r_s(signature)[1] > P256_ORDER // 2


def verifies(key_b64url, message, signature_b64url):
    """ECDSA P-256 over SHA-256 of `message`, DER, either form of s: the
    document's rule is that signers do not normalize s (ring, Android
    Keystore and the Secure Enclave do not), so a verifier must accept a
    high-S signature like a low-S one."""
    signature = b64url(signature_b64url)
    der_r_s(signature)  # at most 72 bytes of well-formed DER
    try:
        public_key(key_b64url).verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def flip_s(signature_b64url):
    """The same signature with s replaced by n - s (the other valid form)."""
    r, s = der_r_s(b64url(signature_b64url))

    def integer(v):
        raw = v.to_bytes(33, "big").lstrip(b"\x00")
        if raw[0] & 0x80:
            raw = b"\x00" + raw
        return b"\x02" + bytes([len(raw)]) + raw

    body = integer(r) + integer(P256_ORDER - s)
    return b64url_encode(b"\x30" + bytes([len(body)]) + body)


# ----------------------------------------------------------- binding codes

def binding_code_at(secret, unix_ms):
    """The rotating code a login screen shows for a `binding: "qr"` secret
    at `unix_ms`: base32 (RFC 4648, no padding) of the first 5 bytes of
    HMAC-SHA256(secret, domain || u64be(floor(unix_ms / 1000)))."""
    step = unix_ms // 1000
    mac = hmac.new(secret, BINDING_DOMAIN + struct.pack(">Q", step), hashlib.sha256).digest()
    return step, mac, base64.b32encode(mac[:5]).decode("ascii").rstrip("=")

