"""What a service provider's client sees when it gets something wrong, or
when someone replays what it sent: every refusal with its OAuth error."""

from urllib.parse import parse_qsl, urlencode, urljoin, urlparse

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.oauth2.rfc7523 import private_key_jwt_sign

import person
import service_provider as sp
from logins import approve_login, new_key_client, new_secret_client

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def authorization_params(client, meta, **extra):
    """The parameters start_login pushes, without pushing them."""
    url, _ = client.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=generate_token(48),
        nonce=generate_token(24), **extra)
    return dict(parse_qsl(urlparse(url).query))


def token_request(client, meta, code="not-a-code"):
    """A token request with the client's authentication and a code."""
    return client.post(
        meta["token_endpoint"],
        data={"grant_type": "authorization_code", "code": code,
              "redirect_uri": client.redirect_uri,
              "code_verifier": generate_token(48)},
        auth=client.client_auth(client.token_endpoint_auth_method),
        withhold_token=True)


def assert_invalid_client(answer):
    assert answer.status_code == 401, (answer.status_code, answer.text)
    assert answer.json()["error"] == "invalid_client"


def test_a_second_redemption_fails_and_revokes_the_first_access_token(
        setup, meta, second_login):
    approved = second_login.approved
    bearer = {"Authorization": f"Bearer {second_login.token['access_token']}"}
    before = requests.get(meta["userinfo_endpoint"], headers=bearer,
                          verify=setup["ca_file"], timeout=10)
    assert before.status_code == 200, before.text

    with pytest.raises(OAuthError) as refused:
        approved.client.fetch_token(
            meta["token_endpoint"], authorization_response=approved.callback_url,
            state=approved.kept["state"],
            code_verifier=approved.kept["code_verifier"])
    assert refused.value.error == "invalid_grant"

    after = requests.get(meta["userinfo_endpoint"], headers=bearer,
                         verify=setup["ca_file"], timeout=10)
    assert after.status_code == 401
    assert 'error="invalid_token"' in after.headers["WWW-Authenticate"]
    assert after.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_code_verifier_is_refused_as_invalid_grant(
        setup, meta, phone):
    approved = approve_login(setup, meta, new_key_client(setup), phone)
    with pytest.raises(OAuthError) as refused:
        approved.client.fetch_token(
            meta["token_endpoint"], authorization_response=approved.callback_url,
            state=approved.kept["state"], code_verifier=generate_token(48))
    assert refused.value.error == "invalid_grant"


def test_a_client_assertion_for_another_audience_is_refused(setup, meta):
    client = new_key_client(setup)
    client.register_client_auth_method(
        sp.ES256PrivateKeyJWT("https://elsewhere.example/oidc/token"))
    assert_invalid_client(token_request(client, meta))


def test_par_accepts_an_assertion_for_the_issuer(setup, meta):
    client = new_key_client(setup)
    client.register_client_auth_method(sp.ES256PrivateKeyJWT(meta["issuer"]))
    browser_url, _ = sp.start_login(client, meta)
    assert browser_url.startswith(meta["authorization_endpoint"] + "?")


@pytest.mark.parametrize("audience", [
    "token_endpoint", "pushed_authorization_request_endpoint"])
def test_an_assertion_for_an_endpoint_url_is_refused(setup, meta, audience):
    # An assertion for an endpoint's URL may have been made for another
    # server that names this one's endpoints (audience injection).
    client = new_key_client(setup)
    client.register_client_auth_method(sp.ES256PrivateKeyJWT(meta[audience]))
    form = authorization_params(client, meta)
    answer = client.post(meta["pushed_authorization_request_endpoint"],
                         data=form,
                         auth=client.client_auth("private_key_jwt"),
                         withhold_token=True)
    assert_invalid_client(answer)


def test_a_replayed_client_assertion_is_refused(setup, meta):
    client = new_key_client(setup)
    par = meta["pushed_authorization_request_endpoint"]
    form = authorization_params(client, meta)
    form["client_assertion_type"] = ASSERTION_TYPE
    form["client_assertion"] = private_key_jwt_sign(
        client.client_secret, client_id=client.client_id,
        token_endpoint=setup["issuer"], alg="ES256", expires_in=60)
    first = requests.post(par, data=form, verify=setup["ca_file"], timeout=10)
    assert first.status_code == 201, first.text
    replayed = requests.post(par, data=form, verify=setup["ca_file"],
                             timeout=10)
    assert_invalid_client(replayed)


def test_a_client_assertion_valid_for_an_hour_is_refused(setup, meta):
    client = new_key_client(setup)
    par = meta["pushed_authorization_request_endpoint"]
    form = authorization_params(client, meta)
    form["client_assertion_type"] = ASSERTION_TYPE
    # What authlib's PrivateKeyJWT signs unless told otherwise.
    form["client_assertion"] = private_key_jwt_sign(
        client.client_secret, client_id=client.client_id,
        token_endpoint=setup["issuer"], alg="ES256")
    assert_invalid_client(
        requests.post(par, data=form, verify=setup["ca_file"], timeout=10))


@pytest.mark.parametrize("endpoint", ["pushed_authorization_request_endpoint",
                                      "token_endpoint"])
def test_a_wrong_client_secret_is_refused_with_a_basic_challenge(
        setup, meta, endpoint):
    client = new_secret_client(setup, secret="eidcs_" + "A" * 43)
    if endpoint == "token_endpoint":
        answer = token_request(client, meta)
    else:
        answer = client.post(
            meta[endpoint], data=authorization_params(client, meta),
            auth=client.client_auth("client_secret_basic"),
            withhold_token=True)
    assert_invalid_client(answer)
    assert answer.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize("change, error", [
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"redirect_uri": "https://elsewhere.example/callback"}, "invalid_request"),
    ({"scope": "profile"}, "invalid_scope"),
    ({"response_type": "token"}, "unsupported_response_type"),
])
def test_par_refuses_a_request_outside_the_registration(
        setup, meta, change, error):
    client = new_key_client(setup)
    form = authorization_params(client, meta)
    form.update(change)
    answer = client.post(
        meta["pushed_authorization_request_endpoint"], data=form,
        auth=client.client_auth("private_key_jwt"), withhold_token=True)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == error


def test_authorize_without_a_pushed_request_is_an_error_page(setup, meta):
    client = new_key_client(setup)
    url = meta["authorization_endpoint"] + "?" + urlencode(
        authorization_params(client, meta))
    answer = requests.get(url, verify=setup["ca_file"], timeout=10,
                          allow_redirects=False)
    assert answer.status_code == 400
    assert "Location" not in answer.headers
    assert answer.headers["Content-Type"].startswith("text/html")


def test_the_login_page_in_another_browser_is_an_error_page(setup, meta):
    browser_url, _ = sp.start_login(new_key_client(setup), meta)
    mine = person.Browser(meta["issuer"], setup["ca_file"])
    page = mine.open_login(browser_url)
    other = requests.get(page.url, verify=setup["ca_file"], timeout=10,
                         allow_redirects=False)
    assert other.status_code == 403
    assert "Location" not in other.headers
    assert "user-id-form" not in other.text


def test_a_pushed_request_opens_one_browser_only(setup, meta):
    browser_url, _ = sp.start_login(new_key_client(setup), meta)
    person.Browser(meta["issuer"], setup["ca_file"]).open_login(browser_url)
    again = requests.get(browser_url, verify=setup["ca_file"], timeout=10,
                         allow_redirects=False)
    assert again.status_code == 400
    assert "Location" not in again.headers


def test_a_denied_login_comes_back_as_access_denied(setup, meta, phone):
    client = new_key_client(setup)
    browser_url, kept = sp.start_login(client, meta)
    browser = person.Browser(meta["issuer"], setup["ca_file"])
    step1 = browser.open_login(browser_url)
    browser.submit_user_id(step1, setup["user_id"])
    phone.deny(phone.pending_login()["request_id"])
    page = browser.go("GET", step1.url)
    outcome = person.LoginPage(page.text)
    assert outcome.text_of("outcome")
    back = browser.go("GET", urljoin(page.url,
                                     outcome.by_id["back"].attrs["href"]))
    assert isinstance(back, str) and back.startswith(client.redirect_uri)
    with pytest.raises(sp.LoginRefused, match="access_denied"):
        sp.finish_login(client, meta, back, kept)
