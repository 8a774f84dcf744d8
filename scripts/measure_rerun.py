"""How long does the app take to re-render after a change of evidence? (docs/app.md)

    .venv/bin/python scripts/measure_rerun.py [--changes 40] [--browser]

1. AppTest (streamlit.testing.v1), warm: after a first run, set or clear one finding at a time
   and time each rerun twice over: ``script`` = the app script's own run (perf_counter from its
   first line to its last, kept in ``st.session_state["_render_ms"]``) and ``rerun`` = AppTest's
   whole ``.run()`` (script plus AppTest's message handling). Each change is new evidence, so no
   per-session memo hides the model calls. Reported for the default lower section ("Next
   tests", which ranks every test) and with "Why" open instead.
2. ``--browser``: the real thing in headless Chromium: click a finding, wait until the posterior
   text on the page shows the model's new leader, report click-to-update wall time.
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
    script, total, parts = [], [], {}
    for v, s in steps:
        t0 = time.perf_counter()
        at.pills(key=f"finding_{v}").set_value(s).run()
        total.append((time.perf_counter() - t0) * 1000)
        script.append(float(at.session_state["_render_ms"]))
        for k, ms in at.session_state["_timings"].items():
            parts.setdefault(k, []).append(ms)
        assert not at.exception, [e.value for e in at.exception]
    return script, total, parts


def browser(net) -> list[float]:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    import test_browser as tb
    from app import components as ui
    from app_server import chrome, running_app, wait_for_app

    groups = {v: g for g, vs in net.groups for v in vs}
    out = []
    with running_app() as url, chrome() as driver:
        driver.get(url)
        wait_for_app(driver)
        wait = WebDriverWait(driver, 60, poll_frequency=0.01,
                             ignored_exceptions=(StaleElementReferenceException, NoSuchElementException, AttributeError))
        evidence: dict = {}
        for v, s in changes(net, 10, seed=1, clear=False):
            tb._open_tab(driver, wait, groups[v])
            evidence[v] = s
            post = net.posterior(evidence, targets=["lesion_type"])["lesion_type"]
            expected = f"lesion type: {ui.pretty(post.idxmax())} {ui.pct(post.max())}"
            t0 = time.perf_counter()
            tb._click(wait, lambda d: tb._pill(d, v, s))
            wait.until(lambda d: tb._posterior_text(d, "lesion_type").startswith(expected)
                       and "pts" in tb._posterior_text(d, "lesion_type"))
            out.append((time.perf_counter() - t0) * 1000)
    return out


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
        ms = browser(net)
        print(f"Chromium click -> posterior shown:     {summary(ms)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
