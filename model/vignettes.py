"""Clinical vignettes: cases with the answers an expert expects, and how a network scores on them.

A vignette file is JSON::

    {"network": "motor_lesion",
     "cases": [{"id": "...", "summary": "...", "evidence": {"babinski": "present", ...},
                "expected": {"lesion_type": "UMN", "lesion_site": "motor_cortex", ...},
                "acceptable": {"lesion_site": ["subcortical_capsule"]}, ...}]}

An expected value may be ``"indeterminate"``: then only the acceptable answers count, and a
target with neither is not scored. The scoring is generic: any target variable of any network.

    >>> from model import load_network
    >>> report = evaluate_vignettes(load_network(), load_vignettes())
    >>> sorted(report.attrs["summary"])[:1]
    ['disease']
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from .errors import EvidenceError, ModelFileError

DEFAULT_VIGNETTES = Path(__file__).resolve().parent.parent / "data" / "vignettes"
INDETERMINATE = "indeterminate"


@dataclass(frozen=True)
class Vignette:
    id: str
    evidence: dict
    expected: dict = field(default_factory=dict)
    acceptable: dict = field(default_factory=dict)
    summary: str = ""
    difficulty: str = ""
    rationale: str = ""

    def accepted(self, target: str) -> set[str]:
        """The answers that count as correct for ``target`` (empty: not scored)."""
        ok = set(self.acceptable.get(target, []))
        exp = self.expected.get(target)
        if exp and exp != INDETERMINATE:
            ok.add(exp)
        return ok


def load_vignettes(path: str | Path | None = None) -> list[Vignette]:
    """Read one vignette file, or every ``*.json`` file of a folder (default: ``data/vignettes``)."""
    path = Path(path) if path is not None else DEFAULT_VIGNETTES
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        raise ModelFileError(f"no vignette files (*.json) in {path}")
    out: list[Vignette] = []
    seen: set[str] = set()
    for f in files:
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelFileError(f"{f}: not a readable JSON vignette file: {exc}") from None
        cases = doc.get("cases") if isinstance(doc, dict) else None
        if not isinstance(cases, list):
            raise ModelFileError(f"{f}: expected an object with a 'cases' list")
        for i, c in enumerate(cases, start=1):
            if not isinstance(c, dict) or "id" not in c or not isinstance(c.get("evidence"), dict):
                raise ModelFileError(f"{f}: case {i} needs an 'id' and an 'evidence' object")
            if c["id"] in seen:
                raise ModelFileError(f"{f}: duplicate case id {c['id']!r}")
            seen.add(c["id"])
            out.append(
                Vignette(
                    id=str(c["id"]),
                    evidence=dict(c["evidence"]),
                    expected=dict(c.get("expected", {})),
                    acceptable={k: list(v) for k, v in (c.get("acceptable") or {}).items()},
                    summary=str(c.get("summary", "")),
                    difficulty=str(c.get("difficulty", "")),
                    rationale=str(c.get("rationale", "")),
                )
            )
    return out


def evaluate_vignettes(net, vignettes: Iterable[Vignette], targets: Sequence[str] | None = None, k: int = 3) -> pd.DataFrame:
    """Score a network on vignettes: one row per (case, target).

    Columns: case, target, expected, accepted, top (the ``k`` best states with probabilities),
    hit1 and hitk (whether the best / any of the ``k`` best is accepted; None when not scored).
    ``report.attrs["summary"]`` maps target -> {"top1": rate, "topk": rate, "n": scored cases}.
    """
    vignettes = list(vignettes)
    if targets is None:
        targets = sorted({t for v in vignettes for t in list(v.expected) + list(v.acceptable)}, key=str)
    rows = []
    for v in vignettes:
        try:
            post = net.posterior(v.evidence, targets=list(targets))
        except EvidenceError as exc:
            raise EvidenceError(f"vignette {v.id!r}: {exc}") from None
        for t in targets:
            series = post[t].sort_values(ascending=False)
            best = list(series.index[:k])
            accepted = v.accepted(t)
            scored = bool(accepted)
            rows.append(
                {
                    "case": v.id,
                    "target": t,
                    "expected": v.expected.get(t, ""),
                    "accepted": sorted(accepted),
                    "top": [(s, float(series[s])) for s in best],
                    "hit1": (best[0] in accepted) if scored else None,
                    "hitk": bool(set(best) & accepted) if scored else None,
                }
            )
    report = pd.DataFrame(rows)
    summary = {}
    for t in targets:
        part = report[(report.target == t) & report.hit1.notna()]
        n = len(part)
        summary[t] = {
            "n": n,
            "top1": float(part.hit1.astype(bool).mean()) if n else float("nan"),
            f"top{k}": float(part.hitk.astype(bool).mean()) if n else float("nan"),
        }
    report.attrs["summary"] = summary
    report.attrs["k"] = k
    return report
