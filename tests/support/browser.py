"""Debian's Chromium, headless, driven by Playwright's sync API (no browser download)."""

from __future__ import annotations

import contextlib
import importlib
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (scripts/system-deps.sh)"
)


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A launched browser; videos may autoplay (the pages under test start them by script)."""
    sync_api = importlib.import_module("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--autoplay-policy=no-user-gesture-required"]
        )
        try:
            yield browser
        finally:
            browser.close()
