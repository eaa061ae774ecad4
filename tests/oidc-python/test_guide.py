"""docs/oidc.md shows the service provider's code this suite runs, not a
copy that drifts from it."""

from pathlib import Path

import service_provider

ROOT = Path(__file__).resolve().parents[2]


def test_the_guide_prints_the_tested_authlib_code_verbatim():
    code = service_provider.guide_excerpt(
        Path(service_provider.__file__).read_text(encoding="utf-8"))
    guide = (ROOT / "docs" / "oidc.md").read_text(encoding="utf-8")
    assert "```python\n" + code + "```\n" in guide, (
        "docs/oidc.md must contain the code between the guide markers of "
        "tests/oidc-python/service_provider.py exactly, in a python block")
