"""Fixtures: the server, the people with their phones and the two service
providers that scripts/test-rp-python.sh set up with the eid CLI (described
in the JSON file named by EID_RP_SETUP)."""

import json
import os
from pathlib import Path

import pytest

import bank
from phone import Phone


def pytest_configure(config):
    if not os.environ.get("EID_RP_SETUP"):
        pytest.exit("run scripts/test-rp-python.sh: it starts the server "
                    "and sets the people and providers up", returncode=2)


@pytest.fixture(scope="session")
def setup():
    with open(os.environ["EID_RP_SETUP"], encoding="utf-8") as f:
        return json.load(f)


def connect(setup, which):
    provider = setup[which]
    return bank.Eid(setup["base_url"],
                    Path(provider["api_key_file"]).read_text("utf-8").strip(),
                    provider["provider_id"], verify=setup["ca_file"])


@pytest.fixture(scope="session")
def eid(setup):
    """The bank's connection."""
    return connect(setup, "bank")


@pytest.fixture(scope="session")
def other_eid(setup):
    """Another service provider's connection."""
    return connect(setup, "other")


@pytest.fixture(scope="session")
def server_key(eid):
    return eid.server_key()


@pytest.fixture(scope="session")
def karen(setup):
    return setup["karen"]


@pytest.fixture(scope="session")
def karens_phone(setup, karen):
    return Phone(setup["eid"], karen["app_dir"], karen["pin"])


@pytest.fixture(scope="session")
def niels(setup):
    return setup["niels"]


@pytest.fixture(scope="session")
def niels_phone(setup, niels):
    return Phone(setup["eid"], niels["app_dir"], niels["pin"])
