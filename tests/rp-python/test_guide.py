"""docs/relying-party.md shows the bank's code this suite runs, not a copy
that drifts from it."""

from pathlib import Path

import bank

ROOT = Path(__file__).resolve().parents[2]


def test_the_guide_prints_the_tested_bank_code_verbatim():
    code = bank.guide_excerpt(Path(bank.__file__).read_text(encoding="utf-8"))
    guide = (ROOT / "docs" / "relying-party.md").read_text(encoding="utf-8")
    assert "```python\n" + code + "```\n" in guide, (
        "docs/relying-party.md must contain the code between the guide "
        "markers of tests/rp-python/bank.py exactly, in a python block")
