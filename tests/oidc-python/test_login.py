"""A person logs in at a service provider whose code is authlib: discovery,
PAR with PKCE, the hosted login page, the phone's approval with the binding
code, the token exchange with private_key_jwt or client_secret_basic, the ID
token and userinfo."""

import hashlib
import json
import re
import time
from urllib.parse import parse_qsl, urlparse

import pytest
import requests

import person
import receipt
import service_provider as sp

HEX32 = re.compile(r"^[0-9a-f]{32}$")
B64URL = re.compile(r"^[A-Za-z0-9_-]+$")


def test_discovery_announces_what_the_authlib_client_uses(meta, setup):
    issuer = setup["issuer"]
    assert meta["issuer"] == issuer
    for key, path in [("authorization_endpoint", "/oidc/authorize"),
                      ("token_endpoint", "/oidc/token"),
                      ("pushed_authorization_request_endpoint", "/oidc/par"),
                      ("userinfo_endpoint", "/oidc/userinfo"),
                      ("jwks_uri", "/oidc/jwks")]:
        assert meta[key] == issuer + path, key
    assert meta["require_pushed_authorization_requests"] is True
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert set(meta["token_endpoint_auth_methods_supported"]) >= {
        "private_key_jwt", "client_secret_basic"}
    assert "ES256" in meta["token_endpoint_auth_signing_alg_values_supported"]
    assert meta["id_token_signing_alg_values_supported"] == ["ES256"]
    assert meta["subject_types_supported"] == ["pairwise"]
    assert sp.SUBSTANTIAL in meta["acr_values_supported"]


def test_jwks_holds_the_p256_key_named_by_the_id_token(
        setup, meta, first_login):
    keys = requests.get(meta["jwks_uri"], verify=setup["ca_file"],
                        timeout=10).json()["keys"]
    header = first_login.claims.header
    assert header["alg"] == "ES256"
    assert header.get("typ") == "JWT"
    named = [k for k in keys if k["kid"] == header["kid"]]
    assert len(named) == 1
    assert (named[0]["kty"], named[0]["crv"]) == ("EC", "P-256")
    assert "d" not in named[0]


def test_the_browser_comes_back_with_code_state_and_issuer(meta, first_login):
    approved = first_login.approved
    assert approved.callback_url.startswith(
        approved.client.redirect_uri + "?")
    answer = dict(parse_qsl(urlparse(approved.callback_url).query))
    assert answer["state"] == approved.kept["state"]
    assert answer["iss"] == meta["issuer"]
    assert answer["code"]


def test_the_login_page_shows_an_eight_letter_binding_code(first_login):
    page = person.LoginPage(first_login.approved.step2.text)
    code = person.binding_code(first_login.approved.step2)
    assert re.fullmatch(r"[A-Z2-7]{8}", code), code
    # Shown in two groups of four, the way the person reads it.
    assert page.text_of("binding-code") == code[:4] + " " + code[4:]
    assert "qr" in page.by_id and page.by_id["qr"].attrs.get("alt")
    assert "status" in page.by_id


def test_the_phone_shows_a_login_at_the_service_provider(setup, first_login):
    request = first_login.approved.request
    assert request["kind"] == "login"
    assert request["provider_name"] == setup["provider_name"]
    assert request["user_id"] == setup["user_id"]
    assert first_login.approved.decision["result"] == "approved"


def test_the_token_answer_is_a_bearer_token_not_to_be_cached(first_login):
    token = first_login.token
    assert token["token_type"].lower() == "bearer"
    assert token["expires_in"] == 300
    assert token["scope"] == "openid"
    assert "no-store" in first_login.token_response.headers["Cache-Control"]


def test_the_id_token_says_substantial_by_app_at_approval_time(first_login):
    claims = first_login.claims
    decided_at_s = first_login.approved.decision["receipt"][
        "decided_at_ms"] / 1000
    assert claims["acr"] == sp.SUBSTANTIAL
    assert claims["amr"] == ["code_app"]
    assert isinstance(claims["auth_time"], int)
    assert abs(claims["auth_time"] - decided_at_s) <= 1
    assert claims["iat"] >= claims["auth_time"]
    assert 0 < claims["exp"] - claims["iat"] <= 300
    assert claims["iat"] <= time.time() + 5
    assert claims["nonce"] == first_login.approved.kept["nonce"]
    assert claims["aud"] in (first_login.approved.client.client_id,
                             [first_login.approved.client.client_id])


def test_the_sub_is_pairwise_and_never_the_user_id(setup, first_login):
    sub = first_login.claims["sub"]
    assert B64URL.match(sub), sub
    assert sub != setup["user_id"]
    assert setup["user_id"] not in sub
    assert sub != setup["identity_id"]
    assert setup["identity_id"] not in sub


def test_the_same_client_gets_the_same_sub_at_every_login(
        first_login, second_login):
    assert second_login.approved.request["request_id"] != \
        first_login.approved.request["request_id"]
    assert second_login.claims["sub"] == first_login.claims["sub"]


def test_a_client_of_another_sector_gets_another_sub(
        setup, first_login, secret_login):
    assert secret_login.claims["aud"] in (
        setup["secret_client"]["client_id"],
        [setup["secret_client"]["client_id"]])
    assert secret_login.claims["sub"] != first_login.claims["sub"]
    assert setup["user_id"] not in secret_login.claims["sub"]


def test_login_hint_fills_in_the_user_id_on_the_english_page(
        setup, secret_login):
    page = person.LoginPage(secret_login.approved.step1.text)
    assert page.by_id["user-id"].attrs.get("value") == setup["user_id"]
    assert page.by_id["user-id-form"].tag == "form"
    assert "csrf" in page.forms["user-id-form"]["fields"]
    html = secret_login.approved.step1.text
    assert re.search(r"<html[^>]*\blang=\"en\"", html), html[:300]


def test_userinfo_answers_the_same_sub(meta, first_login, secret_login):
    for login in (first_login, secret_login):
        assert sp.userinfo(login.approved.client, meta)["sub"] == \
            login.claims["sub"]


def _receipt_of(setup, request_id):
    """The full receipt as the provider's API key reads it at /v1/rp."""
    with open(setup["provider_key_file"]) as f:
        key = f.read().strip()
    answer = requests.get(
        f"{setup['issuer']}/v1/rp/requests/{request_id}",
        headers={"Authorization": f"Bearer {key}"},
        verify=setup["ca_file"], timeout=10)
    answer.raise_for_status()
    return answer.json()["receipt"]


def test_the_id_token_names_the_approved_request_and_its_receipt_by_hash(
        setup, first_login):
    claims = first_login.claims
    request_id = first_login.approved.request["request_id"]
    assert HEX32.match(claims["eid_request_id"])
    assert claims["eid_request_id"] == request_id
    body = _receipt_of(setup, request_id)["receipt"]
    assert body["request_id"] == request_id
    assert body["outcome"] == "approve"
    assert body["kind"] == "login"
    assert body["counter"] == first_login.approved.decision["receipt"][
        "counter"]
    assert claims["eid_receipt_sha256"] == \
        hashlib.sha256(receipt.signing_bytes(body)).hexdigest()
    assert claims["eid_reference_text_sha256"] == \
        receipt.b64url(body["reference_text_sha256"]).hex()


def test_the_receipt_is_signed_by_the_server_key(setup, first_login):
    key = requests.get(setup["issuer"] + "/v1/server-key",
                       verify=setup["ca_file"], timeout=10).json()
    signed = _receipt_of(setup, first_login.claims["eid_request_id"])
    receipt.verify(signed, key["server_public_key"])


def test_nothing_in_the_id_token_links_the_person_across_sectors(
        setup, first_login, secret_login):
    for login in (first_login, secret_login):
        text = json.dumps(dict(login.claims))
        assert setup["identity_id"] not in text
        assert login.approved.decision["authenticator_id"] not in text
