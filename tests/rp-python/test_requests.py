"""The bank's requests against a real server, as docs/relying-party.md
describes them: approved with each kind of channel binding, long-polled,
receipts verified; denied; cancelled; refused input. Karen's phone is the
real `eid app`. Karen gets five requests in all, the per-person limit of
five a minute that test_limits.py runs into with Niels: a test that asks for
her once more needs a person of its own."""

import threading
import time

import pytest

import bank


def test_the_published_server_key_is_the_one_the_server_printed_at_start(
        setup, server_key):
    # The bank pins the key it was given (docs/relying-party.md, section 5).
    assert setup["printed_server_key"]
    assert server_key == setup["printed_server_key"]
    assert len(bank.b64url(server_key)) == 65


def approve_in_a_moment(phone, request_id, code):
    """The phone approves half a second from now, while the bank
    long-polls: the long-poll must wake up at the decision."""
    def approve():
        time.sleep(0.5)
        phone.approve(request_id, code)
    thread = threading.Thread(target=approve)
    thread.start()
    return thread


def test_a_login_with_a_server_issued_code_is_approved_and_its_receipt_verifies(
        eid, server_key, karen, karens_phone):
    text = "Log ind i Netbank"
    created = eid.create_request(karen["user_id"], "login", text)
    assert len(created["binding_code"]) == 8
    assert "binding_secret" not in created
    screen = karens_phone.shows(created["request_id"])
    assert screen["reference_text"] == text
    phone = approve_in_a_moment(karens_phone, created["request_id"],
                                created["binding_code"])
    started = time.monotonic()
    answer = eid.wait_for_decision(created["request_id"])
    phone.join()
    # Woken by the decision, not by the 60 s wait.
    assert time.monotonic() - started < 30
    assert answer["status"] == "approved"
    body = bank.verify_receipt(answer, server_key, eid.provider_id, "login",
                               text)
    assert body["outcome"] == "approve"
    assert body["identity_id"] == karen["identity_id"]
    # The receipt stays readable after the decision.
    assert eid.status(created["request_id"])["receipt"] == answer["receipt"]


def test_a_signature_with_a_rotating_qr_code_is_approved_and_binds_the_nfc_text(
        eid, server_key, karen, karens_phone):
    # "é" written as e + combining accent is refused ("send NFC"): the
    # receipt signs the SHA-256 of exactly the bytes the bank sent.
    text = "Overførsel til Café Bønne\nBeløb: 1.250,00 kr"
    with pytest.raises(bank.EidRefused, match="422 invalid_reference_text: .*send NFC"):
        eid.create_request(karen["user_id"], "signature",
                           text.replace("é", "e\u0301"), binding="qr")
    created = eid.create_request(karen["user_id"], "signature", text,
                                 binding="qr")
    assert "binding_code" not in created
    assert len(bytes.fromhex(created["binding_secret"])) == 32
    screen = karens_phone.shows(created["request_id"])
    assert screen["reference_text"] == text
    karens_phone.approve(created["request_id"],
                         bank.qr_payload(created["binding_secret"]))
    answer = eid.status(created["request_id"], wait=10)
    assert answer["status"] == "approved"
    body = bank.verify_receipt(answer, server_key, eid.provider_id,
                               "signature", text)
    assert body["outcome"] == "approve"
    with pytest.raises(bank.ReceiptInvalid, match="another text"):
        bank.verify_receipt(answer, server_key, eid.provider_id, "signature",
                            "Beløb: 9.250,00 kr")
    with pytest.raises(bank.ReceiptInvalid, match="for a signature"):
        bank.verify_receipt(answer, server_key, eid.provider_id, "login", text)
    with pytest.raises(bank.ReceiptInvalid, match="another provider"):
        bank.verify_receipt(answer, server_key, "0" * 32, "signature", text)


def test_log_in_returns_the_verified_receipt_of_an_approval(
        eid, server_key, karen, karens_phone):
    shown = []

    def show_on_page(code):
        shown.append(code)
        # The person reads the code off the page and approves.
        thread = threading.Thread(target=karens_phone.approve,
                                  args=(karens_phone.only_request(), code))
        thread.start()
        shown.append(thread)

    receipt = bank.log_in(eid, server_key, karen["user_id"], show_on_page)
    shown[1].join()
    assert len(shown[0]) == 8
    assert receipt["receipt"]["outcome"] == "approve"
    assert receipt["receipt"]["identity_id"] == karen["identity_id"]


def test_a_denied_login_has_a_signed_receipt_that_says_deny(
        eid, server_key, karen, karens_phone):
    text = "Log ind i Netbank"
    created = eid.create_request(karen["user_id"], "login", text)
    karens_phone.deny(created["request_id"])
    answer = eid.wait_for_decision(created["request_id"])
    assert answer["status"] == "denied"
    body = bank.verify_receipt(answer, server_key, eid.provider_id, "login",
                               text)
    assert body["outcome"] == "deny"


def test_a_pending_request_long_polls_then_is_cancelled_without_a_receipt(
        eid, server_key, karen):
    created = eid.create_request(karen["user_id"], "login", "Log ind i Netbank")
    started = time.monotonic()
    answer = eid.status(created["request_id"], wait=1)
    assert answer["status"] == "pending"
    assert time.monotonic() - started >= 0.9
    assert answer["receipt"] is None
    assert eid.cancel(created["request_id"])["status"] == "cancelled"
    answer = eid.wait_for_decision(created["request_id"])
    assert answer["status"] == "cancelled"
    with pytest.raises(bank.ReceiptInvalid, match="cancelled"):
        bank.verify_receipt(answer, server_key, eid.provider_id, "login",
                            "Log ind i Netbank")
    with pytest.raises(bank.EidRefused) as refused:
        eid.cancel(created["request_id"])
    assert (refused.value.status, refused.value.code) == (409, "request_closed")


@pytest.mark.parametrize("text", [
    "ADVARSEL: ring til banken",          # the app's own warning word
    "Log ind\n\nhos Netbank",              # an empty line
    "Log ind i Netbank\u202e",             # a bidi control
    "x" * 401,                             # over 400 characters
])
def test_a_reference_text_against_the_rules_is_refused_with_422(
        eid, karen, text):
    with pytest.raises(bank.EidRefused) as refused:
        eid.create_request(karen["user_id"], "login", text)
    assert (refused.value.status, refused.value.code) == (
        422, "invalid_reference_text")
    assert refused.value.retry_after is None


def test_an_unknown_user_id_is_404_unknown_identity(eid):
    with pytest.raises(bank.EidRefused) as refused:
        eid.create_request("Ingen-Saadan-42!", "login", "Log ind i Netbank")
    assert (refused.value.status, refused.value.code) == (
        404, "unknown_identity")


def test_a_blocked_person_is_403_identity_blocked(setup, eid):
    with pytest.raises(bank.EidRefused) as refused:
        eid.create_request(setup["blocked_user_id"], "login",
                           "Log ind i Netbank")
    assert (refused.value.status, refused.value.code) == (
        403, "identity_blocked")


def test_a_wrong_api_key_is_401_and_a_wait_over_60_is_400(setup, eid, karen):
    stranger = bank.Eid(setup["base_url"], "not-a-key", eid.provider_id,
                        verify=setup["ca_file"])
    with pytest.raises(bank.EidRefused) as refused:
        stranger.create_request(karen["user_id"], "login", "Log ind i Netbank")
    assert (refused.value.status, refused.value.code) == (401, "unauthorized")
    with pytest.raises(bank.EidRefused) as refused:
        eid.status("0" * 32, wait=61)
    assert (refused.value.status, refused.value.code) == (
        400, "invalid_parameter")
    with pytest.raises(bank.EidRefused) as refused:
        eid.status("0" * 32)
    assert (refused.value.status, refused.value.code) == (
        404, "unknown_request")
