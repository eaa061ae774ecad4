"""A bank's side of the eID server's `/v1/rp` API, in Python with requests
and cryptography.

The part between the ``guide:`` markers is printed verbatim in
docs/relying-party.md (test_guide.py checks that it still is), so a
developer copies code that scripts/test-rp-python.sh runs against a real
server.
"""

# guide: start
import base64
import hashlib
import hmac
import struct
import time
import unicodedata

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec


class EidRefused(Exception):
    """The server said no. `code` is the stable error code (the table in
    docs/relying-party.md), `retry_after` the seconds of a 429's
    Retry-After header (None on other answers)."""

    def __init__(self, status, code, message, retry_after=None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class ReceiptInvalid(Exception):
    """The receipt does not prove that the person decided this request."""


class Eid:
    """The bank's connection to the eID server, with its API key."""

    def __init__(self, base_url, api_key, provider_id, verify=True):
        self.base_url = base_url.rstrip("/")
        self.provider_id = provider_id
        self.session = requests.Session()
        self.session.verify = verify
        self.api_key = api_key

    def _call(self, method, path, timeout=10, **kwargs):
        answer = self.session.request(
            method, self.base_url + path, timeout=timeout,
            headers={"Authorization": f"Bearer {self.api_key}"}, **kwargs)
        if answer.status_code >= 400:
            error = answer.json()["error"]
            retry_after = answer.headers.get("Retry-After")
            raise EidRefused(answer.status_code, error["code"],
                             error["message"],
                             int(retry_after) if retry_after else None)
        return answer.json()

    def create_request(self, user_id, kind, reference_text, binding="code"):
        """Asks the person with `user_id` to approve a "login" or a
        "signature" of `reference_text` in the app. binding: "code" (the
        answer's `binding_code`, 8 letters to show on your page), "qr" (the
        answer's `binding_secret`, for a QR code that changes every second:
        qr_payload) or None (no binding: only for a person who is not at
        your screen)."""
        body = {"user_id": user_id, "kind": kind,
                "reference_text": reference_text}
        if binding is not None:
            body["binding"] = binding
        return self._call("POST", "/v1/rp/requests", json=body)

    def status(self, request_id, wait=0):
        """The request's status; `wait` (0 to 60) long-polls that many
        seconds while it is pending."""
        return self._call("GET", f"/v1/rp/requests/{request_id}",
                          params={"wait": wait}, timeout=wait + 10)

    def wait_for_decision(self, request_id):
        """Long-polls until the request is no longer pending: approved,
        denied, fraud_reported, expired (after 5 minutes) or cancelled."""
        while True:
            answer = self.status(request_id, wait=60)
            if answer["status"] != "pending":
                return answer

    def cancel(self, request_id):
        """Withdraws a pending request (the person left your page)."""
        return self._call("POST", f"/v1/rp/requests/{request_id}/cancel")

    def server_key(self):
        """The server's receipt-signing public key (SEC1, base64url). Fetch
        it once, check it against the one you were given, and keep it."""
        answer = self.session.get(self.base_url + "/v1/server-key",
                                  timeout=10)
        answer.raise_for_status()
        return answer.json()["server_public_key"]


def qr_payload(binding_secret, unix_ms=None):
    """What your page shows as a QR code for a request made with
    binding="qr"; draw it again every second."""
    if unix_ms is None:
        unix_ms = time.time_ns() // 1_000_000
    mac = hmac.new(bytes.fromhex(binding_secret),
                   b"eid-authenticator/v1/binding-rotating"
                   + struct.pack(">Q", unix_ms // 1000),
                   hashlib.sha256).digest()
    return "eid-bind:v1:" + base64.b32encode(mac[:5]).decode()


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


RECEIPT_DOMAIN = b"eid-authenticator/v1/receipt"
# A receipt with a `call_context` (protocol version 2, docs/protocol.md "Call
# context") has its own domain and the context's four bytes at the end.
RECEIPT_DOMAIN_V2 = b"eid-authenticator/v2/receipt"
SIGNALS = {"unknown": 0, "off": 1, "on": 2}
OUTCOMES = {"approve": 1, "deny": 2, "report_fraud": 3}
KINDS = {"login": 1, "signature": 2}


def receipt_signing_bytes(receipt):
    """The canonical bytes the server signed (docs/protocol.md, the
    `receipt` row): the length-prefixed domain, then the fields in fixed
    order, ids as 16 raw bytes, times and the counter as big-endian u64."""
    context = receipt.get("call_context")
    domain = RECEIPT_DOMAIN if context is None else RECEIPT_DOMAIN_V2
    tail = b"" if context is None else bytes([
        SIGNALS[context["call"]], SIGNALS[context["screen_shared"]],
        SIGNALS[context["remote_control"]], 1 if context["confirmed_self_started"] else 0])
    return b"".join([
        bytes([len(domain)]), domain,
        bytes.fromhex(receipt["request_id"]),
        bytes.fromhex(receipt["identity_id"]),
        bytes.fromhex(receipt["authenticator_id"]),
        bytes([OUTCOMES[receipt["outcome"]], KINDS[receipt["kind"]]]),
        b64url(receipt["reference_text_sha256"]),
        bytes.fromhex(receipt["service_provider_id"]),
        struct.pack(">Q", receipt["decided_at_ms"]),
        b64url(receipt["decision_sha256"]),
        struct.pack(">Q", receipt["counter"]),
        tail,
    ])


def verify_receipt(answer, server_public_key, provider_id, kind,
                   reference_text):
    """Checks the receipt in a decided request's status `answer` and returns
    its body: signed by the server's key, for this request, from this
    provider, of this kind and this exact text. The caller then looks at
    body["outcome"] ("approve", "deny" or "report_fraud")."""
    signed = answer.get("receipt")
    if signed is None:
        raise ReceiptInvalid(f"no receipt: the request is {answer['status']}")
    body = signed["receipt"]
    key = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), b64url(server_public_key))
    try:
        key.verify(b64url(signed["signature"]), receipt_signing_bytes(body),
                   ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ReceiptInvalid("the server's signature does not verify") from None
    # The server stores and the phone shows the text in Unicode NFC.
    text_sha256 = hashlib.sha256(
        unicodedata.normalize("NFC", reference_text).encode()).digest()
    if body["request_id"] != answer["request_id"]:
        raise ReceiptInvalid("the receipt is another request's")
    if body["service_provider_id"] != provider_id:
        raise ReceiptInvalid("the receipt is another provider's")
    if body["kind"] != kind:
        raise ReceiptInvalid(f"the receipt is for a {body['kind']}")
    if b64url(body["reference_text_sha256"]) != text_sha256:
        raise ReceiptInvalid("the person saw another text")
    return body


def log_in(eid, server_key, user_id, show_code, text="Log ind i Netbank"):
    """A whole login: asks the person, has your page show the binding code
    (show_code(code)), waits, and returns the verified signed receipt of an
    approval, to keep as evidence; None when the person denied or reported
    it, or it expired or was cancelled. Raises EidRefused (a wrong user ID,
    a limit) and ReceiptInvalid."""
    created = eid.create_request(user_id, "login", text)
    show_code(created["binding_code"])
    answer = eid.wait_for_decision(created["request_id"])
    if answer["receipt"] is None:
        return None
    body = verify_receipt(answer, server_key, eid.provider_id, "login", text)
    return answer["receipt"] if body["outcome"] == "approve" else None
# guide: end


def guide_excerpt(source):
    """The lines between the guide markers of `source`, as
    docs/relying-party.md prints them."""
    lines = source.splitlines()
    start = lines.index("# guide: start") + 1
    end = lines.index("# guide: end")
    return "\n".join(lines[start:end]) + "\n"
