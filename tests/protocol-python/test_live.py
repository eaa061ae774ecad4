"""One live round trip, the way a service provider's own code does it:
create a request with the API key (`Authorization: Bearer`), let the
person's phone (the real `eid app` CLI) approve it, fetch the signed
receipt and verify it with the server's key from `/v1/server-key`, using
only protocol.py. scripts/test-protocol-python.sh starts the server and
sets the EID_LIVE_* variables; without them these tests fail."""

import hashlib
import json
import os
import pathlib
import ssl
import subprocess
import unicodedata
import urllib.error
import urllib.request

import pytest

import protocol


@pytest.fixture(scope="module")
def live():
    missing = [n for n in ("EID_LIVE_SERVER", "EID_LIVE_CA_FILE", "EID_LIVE_EID",
                           "EID_LIVE_APP_DIR", "EID_LIVE_PIN", "EID_LIVE_USER_ID",
                           "EID_LIVE_PROVIDER_KEY_FILE") if n not in os.environ]
    if missing:
        pytest.fail(f"run scripts/test-protocol-python.sh (missing {', '.join(missing)})")
    return {
        "server": os.environ["EID_LIVE_SERVER"],
        "tls": ssl.create_default_context(cafile=os.environ["EID_LIVE_CA_FILE"]),
        "key": pathlib.Path(os.environ["EID_LIVE_PROVIDER_KEY_FILE"]).read_text().strip(),
        "user_id": os.environ["EID_LIVE_USER_ID"],
    }


def call(live, method, path, body=None, api_key=True):
    """(status, JSON answer) of one HTTPS call."""
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers["Content-Type"] = "application/json"
    if api_key:
        headers["Authorization"] = f"Bearer {live['key']}"
    request = urllib.request.Request(live["server"] + path, data=data,
                                     headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, context=live["tls"], timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def phone(*args):
    done = subprocess.run(
        [os.environ["EID_LIVE_EID"], "--json", "app", *args],
        env={**os.environ, "EID_APP_DIR": os.environ["EID_LIVE_APP_DIR"],
             "EID_PIN": os.environ["EID_LIVE_PIN"]},
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_an_approved_request_has_a_receipt_that_verifies_with_the_server_key(live):
    text = "Overførsel 1.250,00 kr.\ntil Ærø Købmand"
    status, created = call(live, "POST", "/v1/rp/requests", {
        "user_id": live["user_id"], "kind": "signature", "reference_text": text})
    assert status == 201, created
    request_id = created["request_id"]
    protocol.hex16(request_id)

    shown = [r for r in phone("open")["requests"] if r["request_id"] == request_id]
    assert len(shown) == 1, "the phone received the request"
    phone("approve", "--request", request_id)

    status, answer = call(live, "GET", f"/v1/rp/requests/{request_id}?wait=10")
    assert status == 200, answer
    assert answer["status"] == "approved"
    signed = answer["receipt"]
    assert set(signed) == {"receipt", "signature"}
    receipt = signed["receipt"]
    assert receipt["request_id"] == request_id
    assert (receipt["outcome"], receipt["kind"]) == ("approve", "signature")
    # The receipt signs the SHA-256 of exactly the bytes the provider sent.
    assert protocol.b64url(receipt["reference_text_sha256"]) == \
        hashlib.sha256(text.encode("utf-8")).digest()
    assert answer["reference_text_sha256"] == receipt["reference_text_sha256"]

    status, key = call(live, "GET", "/v1/server-key", api_key=False)
    assert status == 200, key
    data = protocol.signing_bytes({"type": "receipt", **receipt})
    assert protocol.verifies(key["server_public_key"], data, signed["signature"])
    # Any change to what the receipt says breaks it.
    forged = dict(receipt, outcome="deny")
    assert not protocol.verifies(key["server_public_key"],
                                 protocol.signing_bytes({"type": "receipt", **forged}),
                                 signed["signature"])


def test_a_reference_text_not_in_nfc_is_refused_with_a_clear_error(live):
    decomposed = unicodedata.normalize("NFD", "Log på Netbank")
    assert decomposed != "Log på Netbank"
    status, refused = call(live, "POST", "/v1/rp/requests", {
        "user_id": live["user_id"], "kind": "login", "reference_text": decomposed})
    assert status == 422, refused
    assert refused["error"]["code"] == "invalid_reference_text"
    assert "send NFC" in refused["error"]["message"]


def test_the_service_provider_api_needs_the_api_key(live):
    status, refused = call(live, "POST", "/v1/rp/requests", {
        "user_id": live["user_id"], "kind": "login", "reference_text": "Log på"},
        api_key=False)
    assert (status, refused["error"]["code"]) == (401, "unauthorized")
