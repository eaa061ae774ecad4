"""Fixtures: the server, person and clients that scripts/test-oidc-python.sh
set up with the eid CLI (described in the JSON file named by EID_OIDC_SETUP),
and whole logins: the service provider (service_provider.py), the person's
browser and phone (person.py)."""

import json
import os
import warnings

import pytest
from authlib.deprecate import AuthlibDeprecationWarning

# authlib 1.9 marks its jose module deprecated in favour of joserfc (which it
# already depends on) but keeps it until 2.0; the suite uses it on purpose, as
# docs/oidc.md does. Filtered here, after authlib.deprecate has put its own
# "always" filter first, because the import below comes before pytest's
# filters apply.
warnings.filterwarnings("ignore", message="authlib.jose module is deprecated",
                        category=AuthlibDeprecationWarning)

import person  # noqa: E402
import service_provider as sp  # noqa: E402
from logins import (  # noqa: E402
    approve_login, new_key_client, new_secret_client, redeem)


def pytest_configure(config):
    if not os.environ.get("EID_OIDC_SETUP"):
        pytest.exit("run scripts/test-oidc-python.sh: it starts the server "
                    "and sets the person and clients up", returncode=2)


@pytest.fixture(scope="session")
def setup():
    with open(os.environ["EID_OIDC_SETUP"], encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="session")
def meta(setup):
    return sp.discover(setup["issuer"], verify=setup["ca_file"])


@pytest.fixture(scope="session")
def phone(setup):
    return person.Phone(setup["eid"], setup["app_dir"], setup["pin"])


@pytest.fixture(scope="session")
def first_login(setup, meta, phone):
    """Client A's first login of the person."""
    return redeem(meta, approve_login(setup, meta, new_key_client(setup),
                                      phone))


@pytest.fixture(scope="session")
def second_login(setup, meta, phone):
    """Client A's second login of the person (its code is then replayed)."""
    return redeem(meta, approve_login(setup, meta, new_key_client(setup),
                                      phone))


@pytest.fixture(scope="session")
def secret_login(setup, meta, phone):
    """Client B's login, in English and with the user ID as login_hint."""
    return redeem(meta, approve_login(
        setup, meta, new_secret_client(setup), phone,
        login_hint=setup["user_id"], ui_locales="en"))
