"""Take docs/screenshot.png: the app with a real project vignette loaded, full page.

    .venv/bin/python scripts/screenshot.py [--case ID] [--out docs/screenshot.png] [--width 1440]

Starts the app on a free localhost port (headless, no usage statistics), opens it in headless
Chromium, loads the vignette through the sidebar exactly as a user would, and stops the server.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from app_server import chrome, running_app, wait_idle  # noqa: E402

DEFAULT_CASE = None  # the first vignette that fits the default network


def pick_case(case: str | None) -> str:
    from app import state
    from model import load_network
    from model.vignettes import load_vignettes

    net = load_network()
    fits = [v for v in load_vignettes() if not state.validate_evidence(v.evidence, net.states, net.observable)[1]]
    if case:
        if case not in {v.id for v in fits}:
            raise SystemExit(f"no vignette {case!r} that fits the default network; choose from: "
                             + ", ".join(v.id for v in fits))
        return case
    # a case with a moderate number of findings reads best in a screenshot
    fits.sort(key=lambda v: abs(len(v.evidence) - 7))
    return fits[0].id


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default=DEFAULT_CASE, help="vignette id (default: a representative one)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshot.png"))
    ap.add_argument("--width", type=int, default=1440)
    args = ap.parse_args(argv)
    case = pick_case(args.case)

    from selenium.webdriver.support.ui import WebDriverWait

    with running_app() as url, chrome(width=args.width, height=1000) as driver:
        driver.get(url)
        wait = WebDriverWait(driver, 90)
        wait.until(lambda d: d.find_elements("css selector", ".st-key-vignette_choice"))
        wait_idle(driver, 90)
        # choose the case in the sidebar select box (type to filter, then Enter)
        box = driver.find_element("css selector", ".st-key-vignette_choice input")
        box.click()
        box.send_keys(case)
        time.sleep(0.5)
        option = wait.until(lambda d: next((o for o in d.find_elements("css selector", "[role='option']")
                                            if o.text.startswith(case + ":") or o.text == case), None))
        option.click()
        time.sleep(0.5)
        wait_idle(driver, 90)
        driver.find_element("css selector", ".st-key-load_vignette button").click()
        wait.until(lambda d: case in d.find_element("css selector", "[data-testid='stSidebar']").text
                   and "example case" in d.find_element("css selector", "[data-testid='stMain']").text)
        wait_idle(driver, 90)
        time.sleep(1.0)
        height = driver.execute_script(
            "return document.querySelector('[data-testid=\"stMainBlockContainer\"]').scrollHeight")
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": args.width, "height": int(height) + 60, "deviceScaleFactor": 1,
                                "mobile": False})
        time.sleep(2.0)  # charts re-layout to the new viewport
        wait_idle(driver, 90)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(args.out)
    print(f"wrote {args.out} (case {case}, {args.width}x{int(height) + 60})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
