"""End-to-end: the real app in headless Chromium (Debian chromium + chromium-driver, Selenium).

Starts ``streamlit run`` on a free localhost port, enters two findings by clicking in the page,
and reads the updated posterior from the page; the figure must be the model's own
(net.posterior recomputed here). The server is always stopped. A missing browser is a failure
with instructions, never a skip: `make test` installs it (scripts/ensure_browser.sh).
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import components as ui  # noqa: E402
from app_server import check_browser, chrome, running_app, wait_for_app  # noqa: E402
from model import load_network  # noqa: E402

TIMEOUT = 60


def _click(wait, find) -> None:
    """Find and click an element, retrying while Streamlit re-renders it (stale references)."""
    def attempt(driver):
        element = find(driver)
        if element is None:
            return False
        driver.execute_script("arguments[0].scrollIntoView({block: 'center', inline: 'center'});", element)
        element.click()
        return True

    wait.until(attempt)


def _tab(driver, label: str):
    return next((t for t in driver.find_elements("css selector", "[role='tab']") if t.text.strip() == label), None)


def _open_tab(driver, wait, label: str) -> None:
    _click(wait, lambda d: _tab(d, label))
    wait.until(lambda d: _tab(d, label).get_attribute("aria-selected") == "true")


def _pill(driver, variable: str, state: str):
    return next((b for b in driver.find_elements("css selector", f".st-key-finding_{variable} button")
                 if b.is_displayed() and b.text.strip() == ui.pretty(state)), None)


def _set_finding(driver, wait, variable: str, state: str) -> None:
    _click(wait, lambda d: _pill(d, variable, state))
    wait.until(lambda d: _pill(d, variable, state).get_attribute("aria-checked") == "true")


def _posterior_text(driver, target: str) -> str:
    els = driver.find_elements("css selector", f".st-key-posterior_{target} [data-testid='stMarkdownContainer']")
    return els[0].text if els else ""


@pytest.mark.browser
def test_two_findings_in_a_real_browser():
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        NoSuchElementException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    check_browser()  # fail fast, with the install command, before starting a server
    net = load_network()
    target = "lesion_type"
    group_of = {v: g for g, vs in net.groups for v in vs}
    findings = [(group_of[v], v, s) for v, s in (("babinski", "present"), ("reflexes_legs", "hyper"))]

    def leader(evidence) -> str:
        post = net.posterior(evidence, targets=[target])[target]
        return f"{ui.pretty(target)}: {ui.pretty(post.idxmax())} {ui.pct(post.max())}"

    downloads = tempfile.mkdtemp(prefix="lesionbn-downloads-")
    with running_app() as url, chrome() as driver:
        driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads})
        driver.get(url)
        wait_for_app(driver, TIMEOUT)
        # Streamlit re-renders the page on every change: re-find elements on every poll
        wait = WebDriverWait(driver, TIMEOUT, poll_frequency=0.2,
                             ignored_exceptions=(StaleElementReferenceException, NoSuchElementException,
                                                 AttributeError, ElementClickInterceptedException))
        wait.until(lambda d: _posterior_text(d, target).startswith(leader({})))
        evidence = {}
        for group, variable, state in findings:
            _open_tab(driver, wait, group)
            _set_finding(driver, wait, variable, state)
            evidence[variable] = state
            expected = leader(evidence)
            try:
                wait.until(lambda d: _posterior_text(d, target).startswith(expected))
            except Exception:
                pytest.fail(f"the page shows {_posterior_text(driver, target)!r}, expected it to start with {expected!r}")
        text = _posterior_text(driver, target)
        assert "pts" in text  # the change caused by the last finding is shown
        assert "not a diagnosis" in driver.find_element("css selector", "[data-testid='stMain']").text

        # the JSON report is generated on click (deferred) and holds this case
        _open_tab(driver, wait, "Share and report")
        _click(wait, lambda d: d.find_element("css selector", ".st-key-dl_json button"))
        report = Path(downloads) / "lesionbn-case.json"
        deadline = time.monotonic() + TIMEOUT
        while not report.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert report.exists(), f"no report downloaded into {downloads}"
        doc = json.loads(report.read_text(encoding="utf-8"))
        assert doc["evidence"] == evidence
        post = net.posterior(evidence)
        assert doc["posteriors"][target] == pytest.approx(post[target].to_dict())
