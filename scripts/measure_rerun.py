"""How long does the app take to re-render after a change of evidence? (docs/app.md)

    .venv/bin/python scripts/measure_rerun.py [--changes 40] [--browser]

1. AppTest (streamlit.testing.v1), warm: after a first run, set or clear one finding at a time
   and time each rerun twice over: ``script`` = the app script's own run (perf_counter from its
   first line to its last, kept in ``st.session_state["_render_ms"]``) and ``rerun`` = AppTest's
   whole ``.run()`` (script plus AppTest's message handling); also the process CPU time of that
   rerun, which does not grow when other jobs load the machine. Each change is new evidence, so no
   per-session memo hides the model calls. Reported for the default lower section ("Next
   tests", which ranks every test) and with "Why" open instead.
2. ``--browser``: the real thing in headless Chromium: click a finding and time, inside the
   page (performance.now() and a MutationObserver), until the posterior text shows the model's
   new leader and the "Last change" caption names the click.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

APP = str(ROOT / "app" / "streamlit_app.py")


def changes(net, n: int, seed: int = 0, clear: bool = True):
    """A reproducible walk of single-finding changes (set a new finding or clear one)."""
    import random

    rng = random.Random(seed)
    evidence: dict = {}
    out = []
    while len(out) < n:
        if clear and evidence and (len(evidence) >= 8 or rng.random() < 0.25):
            v = rng.choice(sorted(evidence))
            evidence.pop(v)
            out.append((v, None))
            continue
        v = rng.choice([x for x in net.observable if x not in evidence])
        s = rng.choice(net.states[v])
        trial = {**evidence, v: s}
        if net.log_probability_of_evidence(trial) == float("-inf"):
            continue
        evidence = trial
        out.append((v, s))
    return out


def summary(ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=10)
    return f"median {statistics.median(ms):6.1f} ms, p90 {q[-1]:6.1f} ms, max {max(ms):6.1f} ms (n={len(ms)})"


def apptest(net, steps, section: str | None) -> tuple[list[float], list[float], dict]:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    if section:
        at.session_state["section"] = section
        at.run()
    script, total, parts, cpu = [], [], {}, []
    for v, s in steps:
        t0, c0 = time.perf_counter(), time.process_time()
        at.pills(key=f"finding_{v}").set_value(s).run()
        total.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
        script.append(float(at.session_state["_render_ms"]))
        for k, ms in at.session_state["_timings"].items():
            parts.setdefault(k, []).append(ms)
        assert not at.exception, [e.value for e in at.exception]
    parts["CPU time of the whole rerun"] = cpu
    return script, total, parts


_OBSERVE = """
const [expected, change, done] = arguments;
window.__lesionbn = {t0: performance.now(), t1: null};
const ok = () => {
  const line = document.querySelector('.st-key-posterior_lesion_type [data-testid="stMarkdownContainer"]');
  const panel = document.querySelector('.st-key-posterior_panel');
  return line && panel && line.textContent.startsWith(expected) && panel.textContent.includes(change);
};
const obs = new MutationObserver(() => {
  if (window.__lesionbn.t1 === null && ok()) { window.__lesionbn.t1 = performance.now(); obs.disconnect(); }
});
obs.observe(document.body, {subtree: true, childList: true, characterData: true});
"""


def browser(net, section: str | None = None) -> list[float]:
    """Click-to-update time measured inside the page (performance.now() at the click and at the
    DOM mutation that shows the new posterior), so WebDriver's own latency is not counted."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    import test_browser as tb
    from app import components as ui
    from app_server import chrome, running_app, wait_for_app, wait_idle

    groups = {v: g for g, vs in net.groups for v in vs}
    out = []
    with running_app() as url, chrome() as driver:
        driver.get(url)
        wait_for_app(driver)
        wait = WebDriverWait(driver, 60, poll_frequency=0.05,
                             ignored_exceptions=(StaleElementReferenceException, NoSuchElementException, AttributeError))
        if section:
            tb._open_tab(driver, wait, section)
        evidence: dict = {}
        for v, s in changes(net, 10, seed=1, clear=False):
            tb._open_tab(driver, wait, groups[v])
            wait_idle(driver)
            evidence[v] = s
            post = net.posterior(evidence, targets=["lesion_type"])["lesion_type"]
            expected = f"lesion type: {ui.pretty(post.idxmax())} {ui.pct(post.max())}"
            pill = wait.until(lambda d: tb._pill(d, v, s))
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", pill)
            driver.execute_script(_OBSERVE, expected, f"Last change: {v} = {s}", None)
            pill.click()
            wait.until(lambda d: d.execute_script("return window.__lesionbn.t1 !== null"))
            t = driver.execute_script("return window.__lesionbn.t1 - window.__lesionbn.t0")
            out.append(float(t))
            wait_idle(driver)
    return out


_MINIMAL_APP = """
import streamlit as st
v = st.pills("x", ["a", "b", "c"], key="finding_x")
with st.container(key="posterior_panel"):
    with st.container(key="posterior_lesion_type"):
        st.markdown(f"**lesion type**: value {v}")
    st.caption(f"Last change: x = {v}")
"""


def browser_baseline(n: int = 10) -> list[float]:
    """The same in-page timing for a one-widget Streamlit app: Streamlit's and Chromium's own cost."""
    import tempfile

    import app_server
    from app_server import chrome, running_app, wait_idle  # noqa: F401

    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "minimal_app.py"
        script.write_text(_MINIMAL_APP, encoding="utf-8")
        saved, app_server.APP = app_server.APP, script
        try:
            out = []
            with running_app() as url, chrome() as driver:
                driver.get(url)
                time.sleep(3)
                for i in range(n):
                    s = "abc"[i % 3]
                    pill = next(b for b in driver.find_elements("css selector", ".st-key-finding_x button")
                                if b.text == s)
                    driver.execute_script(_OBSERVE, f"lesion type: value {s}", f"Last change: x = {s}", None)
                    pill.click()
                    deadline = time.monotonic() + 30
                    while not driver.execute_script("return window.__lesionbn.t1 !== null"):
                        if time.monotonic() > deadline:
                            raise TimeoutError("the minimal app did not update")
                        time.sleep(0.02)
                    out.append(float(driver.execute_script("return window.__lesionbn.t1 - window.__lesionbn.t0")))
                    time.sleep(0.3)
            return out
        finally:
            app_server.APP = saved


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, default=40)
    ap.add_argument("--browser", action="store_true")
    args = ap.parse_args(argv)
    from model import load_network

    net = load_network()
    steps = changes(net, args.changes)
    print(f"default network {net.name} {net.version}; {len(steps)} changes; load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for label, section in (("Next tests open", None), ("Why open", "Why")):
        script, total, parts = apptest(net, steps, section)
        print(f"AppTest, {label:15s} script: {summary(script)}")
        print(f"AppTest, {label:15s} rerun:  {summary(total)}")
        print("    median per part: " + ", ".join(f"{k} {statistics.median(v):.1f} ms" for k, v in parts.items()))
    if args.browser:
        for label, section in (("Next tests open", None), ("Why open", "Why")):
            ms = browser(net, section)
            print(f"Chromium, {label:15s} click -> posterior shown: {summary(ms)}")
        print(f"Chromium, one-widget app (baseline):     {summary(browser_baseline())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
