"""Whole logins for the tests: the service provider (service_provider.py)
starts them and redeems the code, the person (person.py) logs in with the
browser and approves on the phone."""

from dataclasses import dataclass

import person
import service_provider as sp


def new_key_client(setup):
    """Client A (private_key_jwt), a new session as for each web session."""
    a = setup["key_client"]
    with open(a["private_key_file"], "rb") as f:
        pem = f.read()
    return sp.key_client(a["client_id"], pem, a["redirect_uri"],
                         setup["issuer"], verify=setup["ca_file"])


def new_secret_client(setup, secret=None):
    """Client B (client_secret_basic, another sector)."""
    b = setup["secret_client"]
    if secret is None:
        with open(b["client_secret_file"], encoding="utf-8") as f:
            secret = f.read().strip()
    return sp.secret_client(b["client_id"], secret, b["redirect_uri"],
                            verify=setup["ca_file"])


@dataclass
class Approved:
    """A login the person approved, up to the redirect with the code."""

    client: object
    kept: dict
    callback_url: str
    request: dict
    decision: dict
    step1: object
    step2: object


def approve_login(setup, meta, client, phone, **extra):
    """The service provider starts a login, the person types the user ID in
    the browser and approves on the phone with the binding code; the browser
    comes back to the redirect URI.

    Each call is a request to the person, and the server allows five per
    person in any minute (floods.per_identity_per_minute, docs/configuration.md):
    the suite makes exactly five (three logins as fixtures, the wrong
    verifier, the denial); a sixth is answered 429 on the user ID form."""
    browser_url, kept = sp.start_login(client, meta, **extra)
    browser = person.Browser(meta["issuer"], setup["ca_file"])
    step1 = browser.open_login(browser_url)
    step2 = browser.submit_user_id(step1, setup["user_id"])
    code = person.binding_code(step2)
    request = phone.pending_login()
    decision = phone.approve(request["request_id"], code)
    callback_url = browser.wait_for_redirect(step1.url)
    return Approved(client, kept, callback_url, request, decision,
                    step1, step2)


@dataclass
class LoggedIn:
    """An approved login whose code the service provider redeemed."""

    approved: Approved
    token: dict
    claims: dict
    token_response: object


def redeem(meta, approved):
    answers = []
    approved.client.register_compliance_hook(
        "access_token_response", lambda r: answers.append(r) or r)
    token, claims = sp.finish_login(
        approved.client, meta, approved.callback_url, approved.kept)
    return LoggedIn(approved, token, claims, answers[-1])
