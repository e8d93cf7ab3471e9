"""Fixtures of the web tests: a collector with `syslogkit web` over its store (`stack`, one per
module), Debian's Chromium driven by Playwright (`browser`, one per module), and a `page` that
fails the test on any dialog, console error or uncaught script error.

Policy (support.peers.Need): without Chromium or Playwright the browser tests skip with the
reason, and fail under CI=true.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.peers import Need
from support.web import Watched, WebStack, chromium


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebStack]:
    with WebStack(tmp_path_factory.mktemp("web")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    need = Need()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "Playwright is not installed (pip install -e '.[test]')")
    path = chromium()
    need(path is not None, "no Chromium (apt-get install --no-install-recommends chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    context = browser.new_context(timezone_id="UTC", viewport={"width": 1280, "height": 860})
    context.set_default_timeout(10_000)
    page = context.new_page()
    watch = Watched(page)
    try:
        yield watch
    finally:
        context.close()
    assert watch.incidents == [], watch.incidents


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """Where the README's screenshot goes: docs/ with SYSLOGKIT_UPDATE_SCREENSHOT=1, else a
    temporary folder (a test run leaves the checkout as it was)."""
    if os.environ.get("SYSLOGKIT_UPDATE_SCREENSHOT") == "1":
        return Path(__file__).resolve().parents[2] / "docs"
    return tmp_path / "docs"
