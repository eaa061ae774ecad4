"""The vector files are found relative to this folder (the repository's
testvectors/), so the verifier reads nothing of the Rust code."""

import json
import pathlib

import pytest

VECTORS = pathlib.Path(__file__).resolve().parents[2] / "testvectors"


@pytest.fixture(scope="session")
def protocol_vectors():
    return json.loads((VECTORS / "protocol-v1.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def binding_vectors():
    return json.loads((VECTORS / "binding-v1.json").read_text(encoding="utf-8"))
