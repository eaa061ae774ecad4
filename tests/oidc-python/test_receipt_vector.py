"""The suite's receipt check (receipt.py) agrees with the protocol's own
test vector, so a failure against the server is the server's."""

import json
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature

import receipt

ROOT = Path(__file__).resolve().parents[2]


def receipt_vector():
    vectors = json.loads(
        (ROOT / "testvectors" / "protocol-v1.json").read_text("utf-8"))
    vector = next(v for v in vectors["vectors"]
                  if v["name"] == "receipt/approve")
    body = {k: v for k, v in vector["message"].items() if k != "type"}
    return vectors["test_public_key"], vector, body


def test_the_signing_bytes_are_the_protocol_vectors():
    _, vector, body = receipt_vector()
    assert receipt.signing_bytes(body).hex() == vector["signing_bytes_hex"]


def test_the_vector_receipt_verifies_and_a_changed_one_does_not():
    key, vector, body = receipt_vector()
    receipt.verify({"receipt": body, "signature": vector["signature"]}, key)
    changed = dict(body, counter=body["counter"] + 1)
    with pytest.raises(InvalidSignature):
        receipt.verify({"receipt": changed, "signature": vector["signature"]},
                       key)
