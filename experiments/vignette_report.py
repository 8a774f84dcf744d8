"""Print how the default network scores on the clinical vignettes.

For every case: the expected answer, the three most probable states with their probabilities
for lesion_type, lesion_site and disease, and pass/fail; then the summary percentages against
the bar (lesion_type top-1 >= 90%, lesion_site top-3 >= 90% and top-1 >= 75%; disease top-3
reported). Uses only the public API of ``model``.

    python experiments/vignette_report.py                    # data/vignettes, default network
    python experiments/vignette_report.py --vignettes f.json --network other.yaml --failures
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model import load_network  # noqa: E402
from model.vignettes import evaluate_vignettes, load_vignettes  # noqa: E402

TARGETS = ["lesion_type", "lesion_site", "disease"]
#: which hit counts as a pass for each target in the per-case table
PASS_RULE = {"lesion_type": "hit1", "lesion_site": "hit1", "disease": "hitk"}
BAR = [("lesion_type", "top1", 0.90), ("lesion_site", "top3", 0.90), ("lesion_site", "top1", 0.75),
       ("disease", "top3", None)]


def _mark(row) -> str:
    if row.hit1 is None:
        return "-"
    if row.hit1:
        return "PASS"
    return "top3" if row.hitk else "FAIL"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", default=None, help="knowledge/BIF file (default: the default network)")
    ap.add_argument("--vignettes", default=None, help="vignette file or folder (default: data/vignettes)")
    ap.add_argument("--failures", action="store_true", help="only print cases with a miss")
    args = ap.parse_args(argv)

    net = load_network(args.network)
    cases = load_vignettes(args.vignettes)
    report = evaluate_vignettes(net, cases, targets=TARGETS, k=3)

    width = max(len(c.id) for c in cases)
    print(f"{'case':{width}s}  {'target':11s}  {'expected (+acceptable)':42s}  top three")
    for case_id, part in report.groupby("case", sort=False):
        marks = [_mark(r) for r in part.itertuples()]
        if args.failures and all(m in ("PASS", "-") for m in marks):
            continue
        for r, mark in zip(part.itertuples(), marks):
            extra = [a for a in r.accepted if a != r.expected]
            exp = (r.expected or "-") + (f" (+{', '.join(extra)})" if extra else "")
            top = "  ".join(f"{s} {p:.2f}" for s, p in r.top)
            print(f"{case_id:{width}s}  {r.target:11s}  {exp[:42]:42s}  {top:75s} {mark}")
        print()

    summary = report.attrs["summary"]
    print("Summary (acceptable answers count; n = scored cases)")
    ok = True
    for target, key, bar in BAR:
        s = summary[target]
        rate = s[key]
        verdict = "" if bar is None else ("  (bar %.0f%%: %s)" % (100 * bar, "met" if rate >= bar else "NOT MET"))
        ok &= bar is None or rate >= bar
        print(f"  {target:11s} {key}: {100 * rate:5.1f}%  n={s['n']}{verdict}")
    s = summary["disease"]
    print(f"  {'disease':11s} top1: {100 * s['top1']:5.1f}%  n={s['n']}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
