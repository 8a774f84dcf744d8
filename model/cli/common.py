"""Arguments and output helpers shared by the ``lesionbn`` commands."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

from ..errors import EvidenceError
from ..network import Network, load_network


def add_network_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--network",
        metavar="FILE",
        help="network file: knowledge file (.yaml), BIF or XMLBIF (optionally .gz); default: the motor-lesion network",
    )


def add_evidence_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--evidence",
        "-e",
        nargs="*",
        default=[],
        metavar="VAR=STATE",
        help="findings, e.g. babinski=present reflexes_legs=hyper; soft evidence as "
        "reflexes_legs=hyper:0.8,normal:0.2",
    )
    parser.add_argument("--evidence-file", metavar="FILE", help="a JSON object {variable: state or {state: weight}}")


def network_from(args) -> Network:
    return load_network(getattr(args, "network", None))


def parse_evidence(items: list[str], evidence_file: str | None = None) -> dict:
    """``["a=x", "b=y:0.8,z:0.2"]`` -> ``{"a": "x", "b": {"y": 0.8, "z": 0.2}}``."""
    evidence: dict = {}
    if evidence_file:
        try:
            loaded = json.loads(Path(evidence_file).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise EvidenceError(f"{evidence_file}: not valid JSON ({exc})") from None
        if not isinstance(loaded, dict):
            raise EvidenceError(f"{evidence_file}: expected a JSON object {{variable: state}}")
        evidence.update(loaded.get("evidence", loaded) if isinstance(loaded.get("evidence"), dict) else loaded)
    for item in items:
        if "=" not in item:
            raise EvidenceError(f"evidence {item!r} must look like VARIABLE=STATE (e.g. babinski=present)")
        name, value = item.split("=", 1)
        name, value = name.strip(), value.strip()
        if not name or not value:
            raise EvidenceError(f"evidence {item!r} must look like VARIABLE=STATE (e.g. babinski=present)")
        if ":" in value:
            weights = {}
            for part in value.split(","):
                if ":" not in part:
                    raise EvidenceError(f"soft evidence {item!r}: write STATE:WEIGHT pairs separated by commas")
                s, w = part.split(":", 1)
                try:
                    weights[s.strip()] = float(w)
                except ValueError:
                    raise EvidenceError(f"soft evidence {item!r}: weight {w!r} is not a number") from None
            evidence[name] = weights
        else:
            evidence[name] = value
    return evidence


def posterior_table(post: dict[str, pd.Series], top: int | None = None) -> str:
    """A readable text table: one block per target, states sorted by probability, with bars."""
    lines = []
    for target, series in post.items():
        lines.append(target)
        s = series.sort_values(ascending=False)
        if top:
            s = s.head(top)
        width = max(len(str(i)) for i in s.index)
        for state, p in s.items():
            bar = "#" * int(round(p * 30))
            lines.append(f"  {str(state):<{width}}  {p:7.3f}  {bar}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def to_jsonable(obj):
    """Convert pandas/numpy objects to plain JSON types (NaN -> null)."""
    if isinstance(obj, pd.Series):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, pd.DataFrame):
        return [to_jsonable(r) for r in obj.to_dict(orient="records")]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            obj = obj.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def print_json(obj) -> None:
    print(json.dumps(to_jsonable(obj), indent=2))
