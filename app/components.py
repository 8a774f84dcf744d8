"""Charts, tables and small display helpers (presentation only: numbers come from model/).

The pure helpers (``pretty``, ``posterior_rows``, ``top_line``, ``graph_dot``) take plain pandas
objects and return plain values, so they are unit-testable without a running app.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd
import streamlit as st

DISCLAIMER = (
    "For education and decision support only: **not a diagnosis**. The probabilities come from a "
    "model of published figures and expert estimates; they do not replace clinical judgement."
)

#: states shown as bars; the rest are summed into one line below the chart
TOP_STATES = 8


def pretty(name: object) -> str:
    """A display label for a variable or state name (underscores become spaces).

    >>> pretty("motor_cortex")
    'motor cortex'
    """
    return str(name).replace("_", " ")


def pct(p: float) -> str:
    return f"{100.0 * float(p):.1f}%"


def points(d: float) -> str:
    """A change in probability as signed percentage points (``+12.3 pts``)."""
    return f"{100.0 * float(d):+.1f} pts"


def posterior_rows(post: pd.Series, before: pd.Series | None = None) -> list[dict]:
    """Posterior rows sorted most likely first: state, label, p, before (None when unknown) and
    change (p - before, None when unknown). Plain Python: this runs on every rerun."""
    states = [str(s) for s in post.index]
    values = [float(x) for x in post.to_numpy()]
    prior = None if before is None else dict(zip(map(str, before.index), map(float, before.to_numpy())))
    rows = []
    for s, p in zip(states, values):
        b = prior.get(s) if prior is not None else None
        rows.append({"state": s, "label": pretty(s), "p": p, "before": b, "change": None if b is None else p - b})
    rows.sort(key=lambda r: -r["p"])  # stable: ties keep the network's state order
    return rows


def top_line(target: str, post: pd.Series, before: pd.Series | None = None, k: int = 3) -> str:
    """One Markdown line: the ``k`` most likely states with probabilities (and change).

    >>> s = pd.Series([0.7, 0.3], index=["UMN", "LMN"])
    >>> top_line("lesion_type", s)
    '**lesion type**: UMN 70.0% · LMN 30.0%'
    """
    parts = []
    for row in posterior_rows(post, before)[:k]:
        text = f"{row['label']} {pct(row['p'])}"
        if row["change"] is not None and abs(row["change"]) >= 0.0005:
            text += f" ({points(row['change'])})"
        parts.append(text)
    return f"**{pretty(target)}**: " + " · ".join(parts)


def posterior_chart(post: pd.Series, before: pd.Series | None = None, top: int = TOP_STATES,
                    interval: pd.DataFrame | None = None) -> dict:
    """A Vega-Lite spec (data inline) for ``st.vega_lite_chart``: horizontal bars, most likely
    first, labelled with percentages; a grey tick marks the probability before the last change;
    with ``interval`` (rows indexed by state with ``low`` and ``high``, from
    ``net.posterior_intervals``) a black line spans each state's credible interval.

    (A plain spec rather than Altair: Altair's schema validation costs ~150 ms per chart.)
    """
    rows = posterior_rows(post, before)[:top]
    for r in rows:
        c = r["change"]
        r["text"] = pct(r["p"]) + (f"  {points(c)}" if c is not None and abs(c) >= 0.0005 else "")
        r["low"] = r["high"] = None
        if interval is not None and r["state"] in interval.index:
            r["low"], r["high"] = float(interval.loc[r["state"], "low"]), float(interval.loc[r["state"], "high"])
            r["text"] += f"  [{pct(r['low'])}, {pct(r['high'])}]"
        r["text_at"] = max(r["p"], r["before"] or 0.0, r["high"] or 0.0)  # right of bar, tick and interval
    y = {"field": "label", "type": "nominal", "sort": [r["label"] for r in rows], "title": None,
         "axis": {"labelLimit": 220, "labelFontSize": 12}, "scale": {"paddingInner": 0.25}}
    layers = [
        {"mark": {"type": "bar", "color": "#4C78A8", "cornerRadiusEnd": 2},
         "encoding": {"y": y,
                      "x": {"field": "p", "type": "quantitative", "title": None, "scale": {"domain": [0, 1.3]},
                            "axis": {"format": "%", "values": [0, 0.25, 0.5, 0.75, 1]}},
                      "tooltip": [{"field": "label", "title": "state"},
                                  {"field": "p", "title": "now", "format": ".1%", "type": "quantitative"},
                                  {"field": "before", "title": "before last change", "format": ".1%",
                                   "type": "quantitative"}]}},
    ]
    if before is not None:
        layers.append({"mark": {"type": "tick", "color": "#555555", "thickness": 2, "size": 18},
                       "encoding": {"y": y, "x": {"field": "before", "type": "quantitative"}}})
    if interval is not None:
        layers.append({"mark": {"type": "rule", "color": "#111111", "strokeWidth": 1.5},
                       "encoding": {"y": y, "x": {"field": "low", "type": "quantitative"},
                                    "x2": {"field": "high"}}})
    layers.append({"mark": {"type": "text", "align": "left", "dx": 5, "color": "#222222"},
                   "encoding": {"y": y, "x": {"field": "text_at", "type": "quantitative"},
                                "text": {"field": "text", "type": "nominal"}}})
    data = [{k: r[k] for k in ("label", "p", "before", "text", "text_at", "low", "high")} for r in rows]
    return {"data": {"values": data}, "layer": layers, "height": {"step": 24},
            "config": {"view": {"stroke": None}}}


def rest_caption(post: pd.Series, top: int = TOP_STATES) -> str:
    """'and N more states (x% together)' for states beyond the chart, or ''."""
    if len(post) <= top:
        return ""
    rest = post.sort_values(ascending=False).iloc[top:]
    return f"and {len(rest)} more states ({pct(rest.sum())} together)"


# --------------------------------------------------------------------------- tables

def recommendation_table(rec: pd.DataFrame) -> pd.DataFrame:
    """The display columns of a ``net.recommend`` result (one row per test, best first)."""
    out = pd.DataFrame(
        {
            "test": [str(x) for x in rec["label"]] if "label" in rec else [str(i) for i in rec.index],
            "reveals": [", ".join(map(pretty, v)) if isinstance(v, (list, tuple)) else pretty(v)
                        for v in rec.get("variables", [""] * len(rec))],
            "information gain": rec["gain"].to_numpy(dtype=float),
            "rank score": rec["score"].to_numpy(dtype=float) if "score" in rec else float("nan"),
            "P(leader changes)": rec["p_change"].to_numpy(dtype=float) if "p_change" in rec else float("nan"),
            "cost": rec["cost"].to_numpy(dtype=float),
            "invasiveness": rec.get("invasiveness", ""),
            "time to result": rec.get("time_to_result", ""),
        }
    )
    return out.reset_index(drop=True)


def recommendation_columns(rank_rule: str = "") -> dict:
    """Column formats for :func:`recommendation_table` in ``st.dataframe``."""
    return {
        "rank score": st.column_config.NumberColumn(
            format="%.3g", help=f"What the tests are ranked by: {rank_rule}" if rank_rule else "What the tests are ranked by"),
        "test": st.column_config.TextColumn(width="medium"),
        "reveals": st.column_config.TextColumn(width="medium"),
        "time to result": st.column_config.TextColumn(width="medium"),
        "information gain": st.column_config.NumberColumn(
            "information gain", format="%.3f bits",
            help="Expected reduction in uncertainty about the chosen target (mutual information, bits)"),
        "P(leader changes)": st.column_config.NumberColumn(
            format="percent", help="Probability that the most likely state changes after the test"),
        "cost": st.column_config.NumberColumn(format="%.2g", help="Relative cost (from the knowledge file)"),
    }


def mpe_table(mpe: pd.DataFrame) -> pd.DataFrame:
    """Most probable explanations for display: pretty state names, probability, no log column."""
    out = mpe.drop(columns=[c for c in ("log_joint",) if c in mpe.columns]).copy()
    for c in out.columns:
        if c != "probability":
            out[c] = out[c].map(pretty)
    out.columns = [pretty(c) if c != "probability" else c for c in out.columns]
    return out


def woe_chart(findings: pd.DataFrame, hypothesis: str) -> tuple[pd.DataFrame, dict]:
    """Data and Vega-Lite spec: diverging bars of each finding's weight of evidence."""
    df = findings.reset_index()
    df = df.rename(columns={df.columns[0]: "finding"})
    df["label"] = [f"{pretty(f)} = {pretty(s)}" for f, s in zip(df["finding"], df["state"])]
    df["side"] = ["for" if w > 0 else "against" for w in df["woe"]]
    df = df.sort_values("woe", ascending=False)
    spec = {
        "mark": {"type": "bar"},
        "encoding": {
            "x": {"field": "woe", "type": "quantitative",
                  "title": f"weight of evidence for {pretty(hypothesis)} (natural log of the likelihood ratio)"},
            "y": {"field": "label", "type": "nominal", "sort": list(df["label"]), "title": None,
                  "axis": {"labelLimit": 260}},
            "color": {"field": "side", "type": "nominal", "legend": None,
                      "scale": {"domain": ["for", "against"], "range": ["#4C78A8", "#E45756"]}},
            "tooltip": [{"field": "label", "title": "finding"},
                        {"field": "woe", "type": "quantitative", "format": ".2f"},
                        {"field": "likelihood_ratio", "type": "quantitative", "title": "likelihood ratio",
                         "format": ".3g"}],
        },
        "height": {"step": 22},
    }
    return df[["label", "woe", "side", "likelihood_ratio"]], spec


# --------------------------------------------------------------------------- model graph

def _blend(p: float) -> str:
    """White -> blue by probability (hex colour)."""
    p = min(max(float(p), 0.0), 1.0)
    lo, hi = (255, 255, 255), (66, 120, 190)
    r, g, b = (round(lo[i] + (hi[i] - lo[i]) * p) for i in range(3))
    return f"#{r:02x}{g:02x}{b:02x}"


def _q(s: object) -> str:
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def graph_dot(
    variables: Sequence[str],
    parents: Mapping[str, Sequence[str]],
    roles: Mapping[str, str] | None = None,
    evidence: Mapping[str, str] | None = None,
    marginals: Mapping[str, pd.Series] | None = None,
    rankdir: str = "LR",
    groups: Sequence[tuple[str, Sequence[str]]] | None = None,
) -> str:
    """A Graphviz DOT string for the network.

    Evidence nodes are dark with their observed state; when ``marginals`` are given, every other
    node shows its most likely state and is filled by that state's probability (white = 0,
    blue = 1). Latent targets have a double border. ``groups`` (label, variables) are drawn as
    labelled boxes (the examination sections).
    """
    roles = roles or {}
    evidence = evidence or {}
    marginals = marginals or {}
    lines = [
        "digraph network {",
        f"  rankdir={rankdir}; nodesep=0.25; ranksep=0.45;",
        '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica", fontsize=11];',
        '  edge [color="#9aa5b1"];',
    ]
    node_lines = {}
    for v in variables:
        label = pretty(v)
        attrs = {}
        if v in evidence:
            label += f"\\n= {pretty(evidence[v])}"
            attrs.update(fillcolor="#263b54", fontcolor="#ffffff")
        elif v in marginals:
            s = marginals[v]
            best = s.idxmax()
            label += f"\\n{pretty(best)} {pct(s.max())}"
            attrs.update(fillcolor=_blend(s.max()))
            if s.max() > 0.6:
                attrs.update(fontcolor="#ffffff")
        if roles.get(v) == "latent":
            attrs.update(peripheries="2", penwidth="1.5")
        elif roles.get(v) == "helper":
            attrs.update(color="#9aa5b1")
        attr = ", ".join(f"{k}={_q(val)}" for k, val in attrs.items())
        label_q = '"' + label.replace('"', '\\"') + '"'
        node_lines[v] = f"{_q(v)} [label={label_q}{', ' + attr if attr else ''}];"
    grouped = set()
    for i, (title, members) in enumerate(groups or ()):
        members = [m for m in members if m in node_lines and m not in grouped]
        if not members:
            continue
        grouped.update(members)
        lines.append(f"  subgraph cluster_{i} {{")
        lines.append(f'    label={_q(title)}; style="rounded,dashed"; color="#c3cad3"; fontname="Helvetica"; '
                     'fontsize=11; fontcolor="#5b6672";')
        lines += [f"    {node_lines[m]}" for m in members]
        lines.append("  }")
    lines += [f"  {node_lines[v]}" for v in variables if v not in grouped]
    for v in variables:
        for p in parents.get(v, ()):
            lines.append(f"  {_q(p)} -> {_q(v)};")
    lines.append("}")
    return "\n".join(lines)
