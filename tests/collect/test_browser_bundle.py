"""The built browser collector (/sp.js): present, within its size budget, cookieless."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "src" / "sitepulse" / "collect" / "static"
BUNDLE = STATIC / "sp.js"
SIZES = STATIC / "sp.js.size.json"
OWN_GZIP_LIMIT = 4096


def _npm(*args: str) -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed to build sp.js")
    subprocess.run([npm, *args], cwd=ROOT, check=True)


@pytest.fixture(scope="module")
def bundle() -> str:
    """The bundle's text, built first when the set-up has not built it."""
    if not (BUNDLE.exists() and SIZES.exists()):
        if not (ROOT / "node_modules" / "web-vitals").is_dir():
            _npm("ci")
        _npm("run", "build")
    return BUNDLE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def sizes(bundle: str) -> dict[str, int]:
    loaded: dict[str, int] = json.loads(SIZES.read_text(encoding="utf-8"))
    return loaded


def test_size_report_describes_this_bundle(bundle: str, sizes: dict[str, int]) -> None:
    assert sizes["bundle_bytes"] == len(bundle.encode())
    assert 0 < sizes["own_gzip_bytes"] < sizes["bundle_gzip_bytes"]


def test_own_code_is_under_budget(sizes: dict[str, int]) -> None:
    assert sizes["own_gzip_bytes"] < OWN_GZIP_LIMIT


def test_web_vitals_is_bundled_not_imported(bundle: str) -> None:
    assert "require(" not in bundle
    assert "import " not in bundle
    assert "largest-contentful-paint" in bundle


@pytest.mark.parametrize("token", ["cookie", "sessionStorage"])
def test_bundle_never_touches_cookies_or_session_storage(bundle: str, token: str) -> None:
    assert token not in bundle
