"""The errors table of docs/relying-party.md names only codes the server's
OpenAPI document has, each under a status that a `/v1/rp` endpoint declares,
and misses none of the statuses those endpoints declare."""

import re
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def openapi(setup):
    return requests.get(setup["base_url"] + "/openapi.json",
                        verify=setup["ca_file"], timeout=10).json()


def error_table():
    guide = (ROOT / "docs" / "relying-party.md").read_text(encoding="utf-8")
    section = guide.split("## 8. Errors", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d{3}) \| ([^|]+) \|", section, re.MULTILINE)
    return [(int(status), re.findall(r"`([a-z_]+)`", codes))
            for status, codes in rows]


def test_every_code_in_the_errors_table_is_one_the_server_declares(openapi):
    known = set(openapi["components"]["schemas"]["ErrorCode"]["enum"])
    table = error_table()
    assert len(table) >= 10
    for status, codes in table:
        assert codes, status
        for code in codes:
            assert code in known, code


def test_the_errors_table_covers_every_status_of_the_rp_endpoints(openapi):
    declared = {int(status)
                for path, item in openapi["paths"].items()
                if path.startswith("/v1/rp/")
                for operation in item.values()
                for status in operation["responses"]
                if int(status) >= 400}
    assert declared
    assert declared <= {status for status, _ in error_table()}
