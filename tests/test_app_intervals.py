"""The credible-interval toggle beside the posterior bars (issue: uncertainty in the app)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

from app import components as ui  # noqa: E402
from model import load_network  # noqa: E402

APP = str(ROOT / "app" / "streamlit_app.py")


@pytest.fixture(scope="module")
def net():
    return load_network()


def charts(at: AppTest) -> list[tuple[dict, list[dict]]]:
    """(spec, data rows) of every Vega-Lite chart; Streamlit moves inline data into an Arrow table."""
    import pyarrow as pa

    out = []
    for el in at.get("arrow_vega_lite_chart") + at.get("vega_lite_chart"):
        spec = json.loads(el.proto.spec)
        rows = []
        if el.proto.data.data:
            rows = pa.ipc.open_stream(el.proto.data.data).read_all().to_pylist()
        out.append((spec, rows))
    return out


def test_interval_layer_is_drawn_from_posterior_intervals(net):
    ev = {"babinski": "present", "reflexes_legs": "hyper"}
    ci = net.posterior_intervals(ev, targets=["lesion_type"], n_samples=100, level=0.9, seed=0)
    ci = ci[ci["target"] == "lesion_type"].set_index("state")
    post = net.posterior(ev, targets=["lesion_type"])["lesion_type"]
    spec = ui.posterior_chart(post, None, interval=ci)
    marks = [layer["mark"]["type"] for layer in spec["layer"]]
    assert "rule" in marks
    rows = {r["label"]: r for r in spec["data"]["values"]}
    best = post.idxmax()
    row = rows[ui.pretty(best)]
    assert row["low"] == pytest.approx(ci.loc[best, "low"]) and row["high"] == pytest.approx(ci.loc[best, "high"])
    assert row["low"] <= row["p"] + 0.05 and row["high"] >= row["p"] - 0.05
    assert "rule" not in [layer["mark"]["type"] for layer in ui.posterior_chart(post)["layer"]]


def test_toggle_in_the_app_shows_intervals(net):
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.pills(key="finding_babinski").set_value("present").run()
    assert not at.exception
    assert not any("[" in m.value and "%, " in m.value for m in at.markdown)
    at.toggle(key="show_intervals").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    ci = net.posterior_intervals({"babinski": "present"}, targets=net.latent, n_samples=100, level=0.9, seed=0)
    drawn = [rows for spec, rows in charts(at) if any(layer["mark"]["type"] == "rule" for layer in spec.get("layer", []))]
    assert len(drawn) == len(net.latent)
    lows = sorted(r["low"] for rows in drawn for r in rows if r["low"] is not None)
    expected = ci.sort_values("posterior", ascending=False).groupby("target").head(8)["low"]
    np.testing.assert_allclose(sorted(lows), sorted(expected), atol=1e-12)
