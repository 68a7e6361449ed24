"""A headless Chromium (Debian's `chromium` + `chromium-driver`) driven by selenium, for the HTML report's
explorer. Without the browser the tests skip with the reason, except in CI (`CI=true`), where they must run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

SCREENSHOTS_ENV = "LEUKOREPORT_SCREENSHOTS"  # a folder to keep the screenshots in (default: pytest's tmp folder)


def _missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for exe in ("chromium", "chromedriver"):
        if shutil.which(exe) is None:
            return f"{exe} not found (apt-get install chromium chromium-driver; .ci/run does)"
    return None


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session, with the browser's console log kept (level ALL)."""
    reason = _missing()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser tests must run in CI: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory) -> Path:
    """Where the tests save their screenshots ($LEUKOREPORT_SCREENSHOTS, else a tmp folder)."""
    folder = Path(os.environ[SCREENSHOTS_ENV]) if os.environ.get(SCREENSHOTS_ENV) else \
        tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


from tests.report.conftest import (  # noqa: E402, F401  (fixtures)
    fake_config,
    fake_split_seed,
    make_fake_results,
    render_fake,
    run_info,
    templates,
)
