"""Every known answer of testvectors/protocol-v1.json recomputed from the
rules of docs/protocol.md: canonical bytes, their SHA-256, the signature by
the published test key (high-S accepted), and the relations between the
messages (a decision commits to its envelope, a receipt to its decision)."""

import base64
import json
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import protocol


def vectors_of(file, kind):
    return [v for v in file["vectors"] if v["message"]["type"] == kind]


def by_name(file, name):
    return next(v for v in file["vectors"] if v["name"] == name)


def test_the_file_is_version_1_and_covers_every_signed_message(protocol_vectors):
    assert protocol_vectors["version"] == 1
    kinds = {v["message"]["type"] for v in protocol_vectors["vectors"]}
    assert kinds == set(protocol.DOMAINS)


def test_the_published_test_key_matches_its_public_key(protocol_vectors):
    der = protocol.b64url(protocol_vectors["test_key_pkcs8"])
    key = serialization.load_der_private_key(der, password=None)
    assert isinstance(key.curve, ec.SECP256R1)
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert protocol.b64url_encode(point) == protocol_vectors["test_public_key"]


def test_every_vector_has_the_documented_canonical_bytes_digest_and_signature(protocol_vectors):
    checked = 0
    for v in protocol_vectors["vectors"]:
        data = protocol.signing_bytes(v["message"])
        assert data.hex() == v["signing_bytes_hex"], v["name"]
        assert hashlib.sha256(data).hexdigest() == v["signing_bytes_sha256_hex"], v["name"]
        assert protocol.verifies(protocol_vectors["test_public_key"], data, v["signature"]), v["name"]
        checked += 1
    assert checked == len(protocol_vectors["vectors"]) >= 10


def test_a_changed_byte_or_field_breaks_the_signature(protocol_vectors):
    key = protocol_vectors["test_public_key"]
    for v in protocol_vectors["vectors"]:
        data = protocol.signing_bytes(v["message"])
        for at in (0, len(data) // 2, len(data) - 1):
            tampered = bytearray(data)
            tampered[at] ^= 0x01
            assert not protocol.verifies(key, bytes(tampered), v["signature"]), v["name"]


def test_the_vectors_hold_high_s_signatures_and_both_forms_of_s_verify(protocol_vectors):
    key = protocol_vectors["test_public_key"]
    high = [v for v in protocol_vectors["vectors"]
            if protocol.is_high_s(protocol.b64url(v["signature"]))]
    # ring signs without normalizing s: about half its signatures are high-S,
    # so a verifier that insists on low-S refuses genuine receipts.
    assert {v["name"] for v in high} >= {"receipt/approve"}
    for v in protocol_vectors["vectors"]:
        data = protocol.signing_bytes(v["message"])
        other = protocol.flip_s(v["signature"])
        assert protocol.is_high_s(protocol.b64url(other)) != protocol.is_high_s(
            protocol.b64url(v["signature"]))
        assert protocol.verifies(key, data, other), v["name"]


def test_a_decision_commits_to_what_its_envelope_showed(protocol_vectors):
    envelope = by_name(protocol_vectors, "request_envelope/login_with_binding")["message"]
    decision = by_name(protocol_vectors, "decision/approve_with_binding_code")["message"]
    for field in ("request_id", "identity_id", "kind", "service_provider_id",
                  "service_provider_name", "expires_at_ms", "server_nonce"):
        assert decision[field] == envelope[field], field
    assert protocol.b64url(decision["reference_text_sha256"]) == \
        protocol.reference_text_sha256(envelope["reference_text"])
    multiline = by_name(protocol_vectors, "request_envelope/signature_multiline")["message"]
    for name in ("decision/deny", "decision/report_fraud"):
        assert protocol.b64url(by_name(protocol_vectors, name)["message"]["reference_text_sha256"]) == \
            protocol.reference_text_sha256(multiline["reference_text"])


def test_a_receipt_names_the_sha256_of_its_decisions_canonical_bytes(protocol_vectors):
    decision = by_name(protocol_vectors, "decision/approve_with_binding_code")
    receipt = by_name(protocol_vectors, "receipt/approve")["message"]
    assert protocol.b64url(receipt["decision_sha256"]) == \
        hashlib.sha256(protocol.signing_bytes(decision["message"])).digest()
    for field in ("request_id", "identity_id", "authenticator_id", "outcome", "kind",
                  "reference_text_sha256", "service_provider_id", "counter"):
        assert receipt[field] == decision["message"][field], field


def test_strings_are_signed_as_their_exact_utf8_bytes(protocol_vectors):
    envelope = by_name(protocol_vectors, "request_envelope/signature_multiline")
    text = envelope["message"]["reference_text"]
    raw = text.encode("utf-8")
    assert len(raw) > len(text), "the vector has non-ASCII letters"
    assert (len(raw).to_bytes(4, "big") + raw).hex() in envelope["signing_bytes_hex"]


def test_wire_encodings_are_strict():
    with pytest.raises(ValueError):
        protocol.b64url("REREREREREREREREREREREREREREREREREREREREREQ=")  # padded
    with pytest.raises(ValueError):
        protocol.b64url("REREREREREREREREREREREREREREREREREREREREREQ+")  # not url-safe
    with pytest.raises(ValueError):
        protocol.hex16("5555555555555555555555555555555A")  # upper case
    with pytest.raises(ValueError):
        protocol.hex16(base64.b16encode(b"x" * 16).decode().lower()[:30])  # short
    assert protocol.hex16("66666666666666666666666666666666") == bytes([0x66]) * 16


def test_the_version_2_vectors_add_the_call_context_after_the_version_1_fields():
    """testvectors/protocol-v2.json: a decision and a receipt with a
    `call_context` sign under the v2 domains, the v1 fields then the four
    context bytes (docs/protocol.md, "Call context")."""
    import conftest
    file = json.loads((conftest.VECTORS / "protocol-v2.json").read_text(encoding="utf-8"))
    assert file["version"] == 2
    for v in file["vectors"]:
        data = protocol.signing_bytes(v["message"])
        assert data.hex() == v["signing_bytes_hex"], v["name"]
        assert protocol.verifies(file["test_public_key"], data, v["signature"]), v["name"]
        domain = protocol.DOMAINS_V2[v["message"]["type"]].encode("ascii")
        assert data[1:1 + len(domain)] == domain
        without = dict(v["message"])
        del without["call_context"]
        v1 = protocol.signing_bytes(without)
        v1_domain = protocol.DOMAINS[v["message"]["type"]].encode("ascii")
        assert data[1 + len(domain):-4] == v1[1 + len(v1_domain):]
