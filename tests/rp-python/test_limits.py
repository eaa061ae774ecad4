"""The limits on creating requests, with their 429 and Retry-After (the
defaults of docs/relying-party.md): the fraud hold after "this wasn't me"
holds only the provider it was reported for, and the sixth request for one
person within a minute is refused. Niels is the person here, so that
test_requests.py's person stays below the limit."""

import pytest

import bank


@pytest.fixture(scope="module")
def reported(other_eid, niels, niels_phone):
    """Niels reports the other provider's request as fraud: his first
    request this minute."""
    created = other_eid.create_request(niels["user_id"], "login",
                                       "Log ind hos Pension Nord")
    niels_phone.report_fraud(created["request_id"])
    return other_eid.wait_for_decision(created["request_id"])


def test_a_fraud_report_holds_that_providers_requests_for_an_hour(
        reported, other_eid, niels):
    assert reported["status"] == "fraud_reported"
    with pytest.raises(bank.EidRefused) as refused:
        other_eid.create_request(niels["user_id"], "login",
                                 "Log ind hos Pension Nord")
    assert (refused.value.status, refused.value.code) == (429, "cooling_down")
    assert 3500 <= refused.value.retry_after <= 3600


def test_the_sixth_request_for_a_person_within_a_minute_is_429_with_retry_after(
        reported, eid, niels):
    # The reported request was this minute's first for Niels (a refused one
    # is not counted); the bank is not held by the other provider's report.
    for _ in range(4):
        created = eid.create_request(niels["user_id"], "login",
                                     "Log ind i Netbank")
        eid.cancel(created["request_id"])
    with pytest.raises(bank.EidRefused) as refused:
        eid.create_request(niels["user_id"], "login", "Log ind i Netbank")
    assert (refused.value.status, refused.value.code) == (429, "rate_limited")
    assert 1 <= refused.value.retry_after <= 60
    assert f"retry after {refused.value.retry_after} s" in refused.value.message
