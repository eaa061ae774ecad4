"""A service provider's side of an eID login, written with authlib.

The part between the ``guide:`` markers is printed verbatim in docs/oidc.md
(test_guide.py checks that it still is), so a developer copies code that this
suite runs against a real server.
"""

# guide: start
from urllib.parse import parse_qsl, urlencode, urlparse

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, JsonWebToken
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from authlib.oidc.core import CodeIDToken
from joserfc.jwk import ECKey

SUBSTANTIAL = "https://data.gov.dk/concept/core/nsis/loa/Substantial"


class LoginRefused(Exception):
    """The login came back with an error (access_denied when the person
    denied it), or with an answer that is not this browser's."""


class ES256PrivateKeyJWT(PrivateKeyJWT):
    """private_key_jwt signed with ES256 and valid for 60 s: authlib's own
    assertion lives an hour, and the provider accepts at most five minutes.
    Construct it with the issuer: the provider accepts no other `aud`
    (authlib's default is the URL the assertion is sent to)."""

    alg = "ES256"

    def sign(self, auth, token_endpoint):
        return private_key_jwt_sign(
            auth.client_secret, client_id=auth.client_id,
            token_endpoint=token_endpoint, alg=self.alg, expires_in=60)


def discover(issuer, verify=True):
    meta = requests.get(f"{issuer}/.well-known/openid-configuration",
                        verify=verify, timeout=10).json()
    if meta["issuer"] != issuer:
        raise ValueError(f"{issuer} announces another issuer")
    return meta


def key_client(client_id, private_key_pem, redirect_uri, issuer,
               verify=True):
    """A client that authenticates with its EC P-256 key."""
    client = OAuth2Session(
        client_id, ECKey.import_key(private_key_pem),
        token_endpoint_auth_method="private_key_jwt",
        redirect_uri=redirect_uri, scope="openid",
        code_challenge_method="S256", verify=verify, default_timeout=10)
    client.register_client_auth_method(ES256PrivateKeyJWT(issuer))
    return client


def secret_client(client_id, client_secret, redirect_uri, verify=True):
    """A client that authenticates with its secret (HTTP Basic)."""
    return OAuth2Session(
        client_id, client_secret,
        token_endpoint_auth_method="client_secret_basic",
        redirect_uri=redirect_uri, scope="openid",
        code_challenge_method="S256", verify=verify, default_timeout=10)


def start_login(client, meta, **extra):
    """Pushes the authorization request (PAR) and returns the URL to send
    the browser to and what to keep in the web session until it returns.
    extra: login_hint, ui_locales, acr_values, reference_text."""
    verifier, nonce = generate_token(48), generate_token(24)
    # authlib writes the request as URL parameters, the PKCE challenge
    # being create_s256_code_challenge(verifier); with PAR they travel in
    # the authenticated POST instead.
    url, state = client.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier,
        nonce=nonce, **extra)
    pushed = client.post(
        meta["pushed_authorization_request_endpoint"],
        data=dict(parse_qsl(urlparse(url).query)),
        auth=client.client_auth(client.token_endpoint_auth_method),
        withhold_token=True)
    pushed.raise_for_status()
    browser_url = meta["authorization_endpoint"] + "?" + urlencode(
        {"client_id": client.client_id,
         "request_uri": pushed.json()["request_uri"]})
    return browser_url, {"state": state, "nonce": nonce,
                         "code_verifier": verifier}


def finish_login(client, meta, callback_url, kept):
    """At the redirect URI: checks the answer, redeems the code and
    verifies the ID token. Returns the token answer and the ID token's
    claims."""
    answer = dict(parse_qsl(urlparse(callback_url).query))
    # RFC 9207: the answer names its issuer (mix-up defence).
    if answer.get("iss") != meta["issuer"]:
        raise LoginRefused("the answer comes from another issuer")
    if answer.get("state") != kept["state"]:
        raise LoginRefused("state does not match this browser's login")
    if "error" in answer:
        raise LoginRefused(answer["error"])
    token = client.fetch_token(
        meta["token_endpoint"], authorization_response=callback_url,
        state=kept["state"], code_verifier=kept["code_verifier"])
    keys = JsonWebKey.import_key_set(
        client.get(meta["jwks_uri"], withhold_token=True).json())
    claims = JsonWebToken(["ES256"]).decode(
        token["id_token"], keys, claims_cls=CodeIDToken,
        claims_options={
            "iss": {"essential": True, "value": meta["issuer"]},
            "aud": {"essential": True, "value": client.client_id},
            "acr": {"essential": True, "value": SUBSTANTIAL},
            "auth_time": {"essential": True},
        },
        claims_params={"nonce": kept["nonce"],
                       "client_id": client.client_id})
    claims.validate(leeway=30)
    return token, claims


def userinfo(client, meta):
    """The person's pairwise `sub` again, with the access token."""
    answer = client.get(meta["userinfo_endpoint"])
    answer.raise_for_status()
    return answer.json()
# guide: end


def guide_excerpt(source):
    """The lines between the guide markers of `source`, as docs/oidc.md
    prints them."""
    lines = source.splitlines()
    start = lines.index("# guide: start") + 1
    end = lines.index("# guide: end")
    return "\n".join(lines[start:end]) + "\n"
