"""bank.py's receipt bytes and QR codes agree with the protocol's own test
vectors, so a failure against the server is the server's."""

import json
from pathlib import Path

import pytest

import bank

ROOT = Path(__file__).resolve().parents[2]


def vectors(name):
    return json.loads((ROOT / "testvectors" / name).read_text("utf-8"))


def receipt_vector():
    data = vectors("protocol-v1.json")
    vector = next(v for v in data["vectors"] if v["name"] == "receipt/approve")
    body = {k: v for k, v in vector["message"].items() if k != "type"}
    signed = {"receipt": body, "signature": vector["signature"]}
    answer = {"request_id": body["request_id"], "status": "approved",
              "receipt": signed}
    return data["test_public_key"], vector, body, answer


def test_the_receipt_bytes_are_the_protocol_vectors():
    _, vector, body, _ = receipt_vector()
    assert bank.receipt_signing_bytes(body).hex() == vector["signing_bytes_hex"]


def test_a_changed_receipt_does_not_verify():
    key, _, body, answer = receipt_vector()
    changed = dict(answer, receipt=dict(
        answer["receipt"], receipt=dict(body, counter=body["counter"] + 1)))
    with pytest.raises(bank.ReceiptInvalid, match="signature"):
        bank.verify_receipt(changed, key, body["service_provider_id"],
                            body["kind"], "any text")


def test_the_qr_payloads_are_the_binding_vectors():
    data = vectors("binding-v1.json")
    assert data["vectors"]
    for v in data["vectors"]:
        assert bank.qr_payload(v["secret_hex"], v["unix_ms"]) == v["qr_payload"]
