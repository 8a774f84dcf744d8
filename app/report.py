"""Case reports as Markdown, self-contained HTML (no PDF, no external assets) and JSON.

Presentation only: the report is built from evidence and posteriors the app already has. It is
generated in memory when the user clicks a download button; nothing is written to disk.

    >>> import pandas as pd
    >>> d = ReportData("demo", "1.0", "2026-01-01T00:00:00Z", [("babinski", "present", "Upgoing toe")],
    ...                {"lesion_type": [("UMN", 0.8), ("LMN", 0.2)]})
    >>> print(markdown(d).splitlines()[0])
    # lesionbn case report: demo 1.0
"""
from __future__ import annotations

import html as _html
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Mapping

import pandas as pd

from app.components import DISCLAIMER, pct, pretty

PLAIN_DISCLAIMER = DISCLAIMER.replace("**", "")


@dataclass(frozen=True)
class ReportData:
    network: str
    version: str
    created: str
    findings: list[tuple[str, str, str]]            # (variable, state, description)
    posteriors: dict[str, list[tuple[str, float]]]  # target -> [(state, p)], most likely first
    explanation: dict = field(default_factory=dict)  # hypothesis, weights of evidence, conflict
    tests: list[dict] = field(default_factory=list)  # the best next tests for one target

    @classmethod
    def build(cls, net, evidence: Mapping[str, str], posteriors: Mapping[str, pd.Series],
              explanation=None, recommendations: pd.DataFrame | None = None) -> "ReportData":
        """Plain data for a report from what the model returned (``net.posterior``, and optionally
        ``net.explain`` and ``net.recommend``)."""
        findings = [(v, str(s), net.description(v)) for v, s in evidence.items()]
        post = {
            t: [(str(k), float(p)) for k, p in s.sort_values(ascending=False, kind="stable").items()]
            for t, s in posteriors.items()
        }
        created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        ex = {}
        if explanation is not None:
            ex = {
                "target": explanation.target,
                "hypothesis": explanation.hypothesis,
                "probability": float(explanation.posterior[explanation.hypothesis]),
                "rival": explanation.rival_label,
                "conflicting": bool(explanation.conflicting),
                "conflict_message": explanation.conflict_message,
                "findings": [
                    {"finding": str(f), "state": str(r["state"]), "woe": float(r["woe"]),
                     "likelihood_ratio": float(r["likelihood_ratio"])}
                    for f, r in explanation.findings.iterrows()
                ],
            }
        tests = []
        if recommendations is not None and not recommendations.empty:
            target = recommendations.attrs.get("target", "")
            for name, r in recommendations.iterrows():
                tests.append({"test": str(r.get("label") or name), "target": str(target),
                              "gain_bits": float(r["gain"]), "cost": float(r["cost"]),
                              "invasiveness": str(r.get("invasiveness", "")),
                              "time_to_result": str(r.get("time_to_result", ""))})
        return cls(net.name, net.version, created, findings, post, ex, tests)


def markdown(d: ReportData, top: int = 5) -> str:
    lines = [f"# lesionbn case report: {d.network} {d.version}".rstrip(), "", f"Generated {d.created}.", "",
             f"> {PLAIN_DISCLAIMER}", "", "## Findings", ""]
    if d.findings:
        lines += ["| finding | value | description |", "|---|---|---|"]
        lines += [f"| {pretty(v)} | {pretty(s)} | {desc} |" for v, s, desc in d.findings]
    else:
        lines.append("No findings entered (prior probabilities).")
    lines += ["", "## Posterior probabilities", ""]
    for t, rows in d.posteriors.items():
        lines += [f"### {pretty(t)}", "", "| state | probability |", "|---|---|"]
        lines += [f"| {pretty(s)} | {pct(p)} |" for s, p in rows[:top]]
        if len(rows) > top:
            lines.append(f"| ({len(rows) - top} more) | {pct(sum(p for _, p in rows[top:]))} |")
        lines.append("")
    ex = d.explanation
    if ex:
        lines += ["## Why", "", f"Leading hypothesis: **{pretty(ex['target'])} = {pretty(ex['hypothesis'])}** "
                  f"({pct(ex['probability'])}), against {pretty(ex['rival'])}.", ""]
        if ex["findings"]:
            lines += ["| finding | value | likelihood ratio | speaks |", "|---|---|---|---|"]
            lines += [f"| {pretty(f['finding'])} | {pretty(f['state'])} | {f['likelihood_ratio']:.3g} | "
                      f"{'for' if f['woe'] > 0 else 'against' if f['woe'] < 0 else 'neither'} |" for f in ex["findings"]]
            lines.append("")
        lines += [("**The findings conflict.** " if ex["conflicting"] else "") + ex["conflict_message"], ""]
    if d.tests:
        lines += [f"## Next tests for {pretty(d.tests[0]['target'])}", "",
                  "| test | information gain | cost | invasiveness | time to result |", "|---|---|---|---|---|"]
        lines += [f"| {t['test']} | {t['gain_bits']:.3f} bits | {t['cost']:g} | {t['invasiveness']} | "
                  f"{t['time_to_result']} |" for t in d.tests]
        lines.append("")
    return "\n".join(lines)


def html(d: ReportData, top: int = 5) -> str:
    e = _html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>lesionbn case report: {e(d.network)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;color:#222}"
        "table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #ccc;padding:.25rem .6rem;"
        "text-align:left}.bar{background:#4C78A8;height:.8rem;display:inline-block}"
        ".note{background:#f3f6fa;border-left:4px solid #4C78A8;padding:.5rem 1rem}</style></head><body>",
        f"<h1>lesionbn case report: {e(d.network)} {e(d.version)}</h1>",
        f"<p>Generated {e(d.created)}.</p><p class='note'>{e(PLAIN_DISCLAIMER)}</p><h2>Findings</h2>",
    ]
    if d.findings:
        parts.append("<table><tr><th>finding</th><th>value</th><th>description</th></tr>")
        parts += [f"<tr><td>{e(pretty(v))}</td><td>{e(pretty(s))}</td><td>{e(desc)}</td></tr>" for v, s, desc in d.findings]
        parts.append("</table>")
    else:
        parts.append("<p>No findings entered (prior probabilities).</p>")
    parts.append("<h2>Posterior probabilities</h2>")
    for t, rows in d.posteriors.items():
        parts.append(f"<h3>{e(pretty(t))}</h3><table><tr><th>state</th><th>probability</th><th></th></tr>")
        for s, p in rows[:top]:
            width = f"{max(0.0, min(1.0, p)) * 12:.2f}rem"
            parts.append(f"<tr><td>{e(pretty(s))}</td><td>{pct(p)}</td><td><span class='bar' style='width:{width}'></span></td></tr>")
        parts.append("</table>")
    ex = d.explanation
    if ex:
        parts.append(f"<h2>Why</h2><p>Leading hypothesis: <b>{e(pretty(ex['target']))} = {e(pretty(ex['hypothesis']))}"
                     f"</b> ({pct(ex['probability'])}), against {e(pretty(ex['rival']))}.</p>")
        if ex["findings"]:
            parts.append("<table><tr><th>finding</th><th>value</th><th>likelihood ratio</th><th>speaks</th></tr>")
            parts += [f"<tr><td>{e(pretty(f['finding']))}</td><td>{e(pretty(f['state']))}</td>"
                      f"<td>{f['likelihood_ratio']:.3g}</td><td>{'for' if f['woe'] > 0 else 'against' if f['woe'] < 0 else 'neither'}"
                      "</td></tr>" for f in ex["findings"]]
            parts.append("</table>")
        parts.append(f"<p class='note'>{'<b>The findings conflict.</b> ' if ex['conflicting'] else ''}"
                     f"{e(ex['conflict_message'])}</p>")
    if d.tests:
        parts.append(f"<h2>Next tests for {e(pretty(d.tests[0]['target']))}</h2><table><tr><th>test</th>"
                     "<th>information gain</th><th>cost</th><th>invasiveness</th><th>time to result</th></tr>")
        parts += [f"<tr><td>{e(t['test'])}</td><td>{t['gain_bits']:.3f} bits</td><td>{t['cost']:g}</td>"
                  f"<td>{e(t['invasiveness'])}</td><td>{e(t['time_to_result'])}</td></tr>" for t in d.tests]
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)


def to_json(d: ReportData) -> str:
    doc = asdict(d)
    doc["evidence"] = {v: s for v, s, _ in d.findings}
    doc["posteriors"] = {t: {s: p for s, p in rows} for t, rows in d.posteriors.items()}
    doc["disclaimer"] = PLAIN_DISCLAIMER
    del doc["findings"]
    return json.dumps(doc, indent=2, ensure_ascii=False)
