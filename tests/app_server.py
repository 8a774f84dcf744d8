"""Support for the end-to-end app tests and scripts/screenshot.py: run the Streamlit app on a free
localhost port and drive Debian's headless Chromium with Selenium.

Nothing here is skipped quietly: a missing browser raises :class:`BrowserMissing` with the command
that installs it.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app" / "streamlit_app.py"
CHROMIUM = os.environ.get("LESIONBN_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("LESIONBN_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
)


class BrowserMissing(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(env: dict | None = None, timeout: float = 90.0):
    """Start ``streamlit run app/streamlit_app.py`` on a free port; yield its URL; always stop it."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
    ]
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"streamlit exited with code {proc.returncode}:\n{log.read().decode(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"streamlit did not become healthy on {url} within {timeout:.0f} s")
            time.sleep(0.3)
        yield url
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()


def check_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.exists(p) or shutil.which(p))]
    if missing:
        raise BrowserMissing(
            f"the end-to-end test needs Chromium and ChromeDriver, missing: {', '.join(missing)}. "
            "Install them with `bash scripts/ensure_browser.sh` (Debian: apt-get install -y chromium "
            "chromium-driver), or point LESIONBN_CHROMIUM / LESIONBN_CHROMEDRIVER at them."
        )
    try:
        import selenium  # noqa: F401
    except ImportError as exc:
        raise BrowserMissing("the end-to-end test needs selenium: pip install -e '.[test]'") from exc


@contextlib.contextmanager
def chrome(width: int = 1440, height: int = 1000):
    """A headless Chromium WebDriver with a fresh profile (removed afterwards)."""
    check_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="lesionbn-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for_app(driver, timeout: float = 60.0) -> None:
    """Wait until the app has rendered and is idle (no script running)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, timeout)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "[data-testid='stMainBlockContainer']")))
    wait_idle(driver, timeout)


def wait_idle(driver, timeout: float = 60.0) -> None:
    """Wait until Streamlit shows no running script (the status widget's stop button is gone)."""
    from selenium.webdriver.support.ui import WebDriverWait

    time.sleep(0.3)
    WebDriverWait(driver, timeout).until(
        lambda d: not d.find_elements("css selector", "[data-testid='stStatusWidget'] button")
        and d.find_elements("css selector", "[class*='st-key-posterior_'], [data-testid='stGraphVizChart']")
    )
