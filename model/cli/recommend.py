"""``lesionbn recommend`` (which test next) and ``lesionbn explain`` (why this posterior)."""
from __future__ import annotations

import pandas as pd

from .common import add_evidence_arguments, add_network_argument, network_from, parse_evidence, print_json


def register(sub) -> None:
    p = sub.add_parser("recommend", help="rank the available tests by expected information (with costs)")
    add_network_argument(p)
    add_evidence_arguments(p)
    p.add_argument("--target", "-t", help="variable to learn about (default: lesion_site, else the first latent one)")
    p.add_argument("--k", type=int, default=10, help="number of tests to show (default 10)")
    p.add_argument("--rank-by", choices=["gain_per_cost", "net_benefit"], default="gain_per_cost",
                   help="gain / cost (default) or gain - cost_weight * cost")
    p.add_argument("--cost-weight", type=float, default=None,
                   help="bits per cost unit for net_benefit (default: 1 / the largest available cost)")
    p.add_argument("--threshold", type=float, default=0.9,
                   help="probability at which the leading state counts as settled (default 0.9)")
    p.add_argument("--lookahead", type=int, choices=[1, 2], default=1,
                   help="2: also the best second test after each outcome, and the best pair")
    p.add_argument("--lookahead-first", type=int, default=None, metavar="M",
                   help="with --lookahead 2: only the M best tests as first tests (faster)")
    p.add_argument("--min-gain", type=float, default=0.01,
                   help="expected gains (bits) below this count as worthless for the stopping rule")
    p.add_argument("--max-outcomes", type=int, default=4096,
                   help="leave out test groups with more joint outcomes than this")
    p.add_argument("--preview", type=int, default=1, metavar="N",
                   help="show the outcome preview ('what if') of the N best tests (default 1)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=recommend_command)

    p = sub.add_parser("explain", help="weight of evidence of each finding, conflict, most probable explanation")
    add_network_argument(p)
    add_evidence_arguments(p)
    p.add_argument("--target", "-t", help="variable to explain (default: lesion_site, else the first latent one)")
    p.add_argument("--hypothesis", help="state of the target to explain (default: the most probable)")
    p.add_argument("--rival", nargs="*", help="state(s) to compare with (default: all others)")
    p.add_argument("--map", nargs="*", metavar="VAR", dest="map_variables",
                   help="variables of the most probable joint explanation (default: the latent ones)")
    p.add_argument("--top", type=int, default=5, help="number of joint explanations to show (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=explain_command)


def _fmt_table(df: pd.DataFrame) -> str:
    return df.to_string(index=False) if not df.empty else "(none)"


def recommend_command(args) -> int:
    net = network_from(args)
    evidence = parse_evidence(args.evidence, args.evidence_file)
    rec = net.recommend(
        evidence, target=args.target, k=args.k, rank_by=args.rank_by, cost_weight=args.cost_weight,
        threshold=args.threshold, lookahead=args.lookahead, min_gain=args.min_gain,
        max_outcomes=args.max_outcomes, lookahead_first=args.lookahead_first,
    )
    a = rec.attrs
    if args.json:
        tests = rec.reset_index().to_dict(orient="records")
        print_json({
            "target": a["target"], "evidence": evidence, "posterior": a["posterior"], "leader": a["leader"],
            "leader_probability": a["leader_probability"], "entropy_bits": a["entropy"],
            "rank_by": a["rank_by"], "rank_rule": a["rank_rule"], "stop": a["stop"],
            "stop_reason": a["stop_reason"], "threshold": a["threshold"], "skipped": a["skipped"],
            "best_pair": a.get("best_pair"), "pairs": a.get("pairs"), "second_gain": a.get("second_gain"),
            "tests": tests,
        })
        return 0
    if evidence:
        print("evidence: " + ", ".join(f"{k}={v}" for k, v in evidence.items()))
    print(f"target: {a['target']}  leader: {a['leader']} (P = {a['leader_probability']:.3f}, "
          f"entropy {a['entropy']:.2f} bits)")
    print(f"ranked by {a['rank_rule']}\n")
    cols = ["rank", "test", "gain", "p_change", "p_threshold", "cost", "invasiveness", "time_to_result", "score"]
    if a["lookahead"] == 2:
        cols += ["expected_next_gain", "p_stop_after"]
    table = rec.reset_index()[cols].rename(columns={"gain": "gain_bits", "p_threshold": f"p>={a['threshold']:g}"})
    print(_fmt_table(table.round(4)))
    if a["skipped"]:
        print("\nleft out (too many joint outcomes): " + ", ".join(f"{s['test']} ({s['n_outcomes']})" for s in a["skipped"]))
    if a.get("best_pair"):
        bp = a["best_pair"]
        print(f"\nbest pair: {' + '.join(bp['tests'])}  (joint gain {bp['gain']:.3f} bits, cost {bp['cost']:g})")
        first = rec.index[0]
        after = a.get("second_gain", {}).get(first, {})
        shown = [t for t in rec.index[1:] if t in after][:5]
        if shown:
            print(f"expected gain of other tests once {first} is done (bits, now -> after):")
            for t in shown:
                print(f"  {t:<30s} {rec.at[t, 'gain']:.3f} -> {after[t]:.3f}")
    print("\nstop: " + (a["stop_reason"] if a["stop"] else "no -- a test can still change the picture"))
    for name in list(rec.index[: max(args.preview, 0)]):
        print(f"\nwhat if -- {name} ({rec.at[name, 'label']}):")
        rows = []
        for o in sorted(rec.at[name, "outcomes"], key=lambda o: -o["probability"]):
            row = {"outcome": ", ".join(f"{k}={v}" for k, v in o["outcome"].items()),
                   "P(outcome)": round(o["probability"], 4), "leader": o["leader"],
                   "P(leader)": round(o["leader_probability"], 4)}
            if "next_test" in o:
                row["next test"] = o["next_test"] or "(stop)"
            rows.append(row)
        print(_fmt_table(pd.DataFrame(rows).head(12)))
        if len(rows) > 12:
            print(f"  ... {len(rows) - 12} more outcomes (use --json)")
    return 0


def explain_command(args) -> int:
    net = network_from(args)
    evidence = parse_evidence(args.evidence, args.evidence_file)
    ex = net.explain(evidence, target=args.target, hypothesis=args.hypothesis, rival=args.rival or None)
    mpe = net.most_probable_explanation(evidence, variables=args.map_variables or None, n=args.top)
    if args.json:
        print_json({"evidence": evidence, **ex.to_dict(), "most_probable_explanation": mpe})
        return 0
    if evidence:
        print("evidence: " + ", ".join(f"{k}={v}" for k, v in evidence.items()) + "\n")
    print(ex)
    print("\nmost probable joint explanation (" + ", ".join(mpe.attrs["variables"]) + "):")
    print(_fmt_table(mpe.drop(columns=["log_joint"]).round(4)))
    return 0
