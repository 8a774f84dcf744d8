"""``lesionbn sensitivity parameters|evidence|uncertainty``: scripted, reproducible analyses.

Every run writes CSV tables and PNG figures into the folder named by ``--out`` and saves its
configuration beside them (``config.json``: the command, arguments, seed, network and versions),
so a result folder can be regenerated exactly. With ``--cases FILE`` or ``--vignettes`` the
analysis runs for every scenario (a sweep), locally or, with ``--scheduler tcp://host:port``, on
a running Dask distributed cluster.

    lesionbn sensitivity parameters -e babinski=present --target lesion_type --out results/tornado
    lesionbn sensitivity uncertainty -e babinski=present --out results/ci --seed 1 --json
    lesionbn sensitivity uncertainty --vignettes --target lesion_site --out results/vig --scheduler tcp://127.0.0.1:8786
"""
from __future__ import annotations

import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

from .common import add_evidence_arguments, add_network_argument, network_from, parse_evidence, print_json, to_jsonable


def register(sub) -> None:
    p = sub.add_parser("sensitivity", help="parameter / evidence sensitivity and credible intervals (CSV + PNG)",
                       description="Sensitivity analyses and uncertainty, written as CSV and PNG into --out "
                       "with config.json beside them.")
    kinds = p.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True

    def common(q):
        add_network_argument(q)
        add_evidence_arguments(q)
        q.add_argument("--out", "-o", required=True, metavar="DIR", help="folder for the results (created)")
        q.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        q.add_argument("--cases", metavar="FILE", help="sweep: a CSV of cases (one scenario per row)")
        q.add_argument("--vignettes", nargs="?", const="", default=None, metavar="PATH",
                       help="sweep over vignettes (default: the bundled ones)")
        q.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler for sweeps, e.g. tcp://127.0.0.1:8786")
        q.add_argument("--json", action="store_true", help="also print the main table as JSON on stdout")
        q.set_defaults(func=run)

    q = kinds.add_parser("parameters", help="tornado table/chart of CPT entries and admissible deviations")
    common(q)
    q.add_argument("--target", "-t", help="query variable (default: the first latent variable)")
    q.add_argument("--state", help="query state (default: the most probable one)")
    q.add_argument("--method", choices=["odds", "dirichlet"], default="odds",
                   help="plausible range: odds x (1 -/+ spread), or the Dirichlet credible interval")
    q.add_argument("--spread", type=float, default=0.5, help="odds spread (default 0.5 = +-50%%)")
    q.add_argument("--prior-strength", type=float, default=20.0, help="Dirichlet equivalent sample size per row")
    q.add_argument("--level", type=float, default=0.9, help="credible level (default 0.9)")
    q.add_argument("--top", type=int, default=20, help="rows in the chart (the CSV has all)")
    q.add_argument("--parameter", action="append", default=[], metavar="VAR=STATE[|PARENT=STATE,...]",
                   help="also write the sensitivity function of this CPT entry (repeatable)")

    q = kinds.add_parser("evidence", help="posterior had each finding been missing or different")
    common(q)
    q.add_argument("--target", "-t", help="query variable (default: the first latent variable)")

    q = kinds.add_parser("uncertainty", help="credible intervals of posteriors under CPT uncertainty")
    common(q)
    q.add_argument("--target", "-t", nargs="*", help="targets (default: the latent variables)")
    q.add_argument("--prior-strength", type=float, default=20.0, help="Dirichlet equivalent sample size per row")
    q.add_argument("--samples", type=int, default=200, help="sampled networks (default 200)")
    q.add_argument("--level", type=float, default=0.9, help="credible level (default 0.9)")
    q.add_argument("--recommend", action="store_true", help="also the stability of the test ranking")


def _config(args, net) -> dict:
    from .. import __version__

    skip = {"func"}
    return {
        "command": "lesionbn sensitivity " + args.kind,
        "argv": sys.argv[1:],
        "arguments": {k: v for k, v in vars(args).items() if k not in skip},
        "network": {"name": net.name, "version": net.version, "file": getattr(args, "network", None)},
        "lesionbn": __version__,
        "python": platform.python_version(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _scenarios(args, net):
    if args.cases:
        import pandas as pd

        return pd.read_csv(args.cases, dtype=str, keep_default_na=True)
    if args.vignettes is not None:
        from ..vignettes import load_vignettes

        return load_vignettes(args.vignettes or None)
    return None


def _parse_parameter(text: str):
    """``lung=yes|smoke=yes,asia=no`` -> ("lung", "yes", {"smoke": "yes", "asia": "no"})."""
    from ..errors import EvidenceError

    head, _, cond = text.partition("|")
    if "=" not in head:
        raise EvidenceError(f"--parameter {text!r}: write VARIABLE=STATE|PARENT=STATE,... (e.g. lung=yes|smoke=yes)")
    var, value = (s.strip() for s in head.split("=", 1))
    config = {}
    for part in filter(None, (c.strip() for c in cond.split(","))):
        if "=" not in part:
            raise EvidenceError(f"--parameter {text!r}: parent condition {part!r} must look like PARENT=STATE")
        k, v = part.split("=", 1)
        config[k.strip()] = v.strip()
    return var, value, config


def run(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    net = network_from(args)
    evidence = parse_evidence(args.evidence, args.evidence_file)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    scenarios = _scenarios(args, net)

    def save_csv(df, name):
        df.to_csv(out / name, index=False)
        written.append(name)

    def save_fig(ax, name):
        ax.figure.savefig(out / name, dpi=120)
        plt.close(ax.figure)
        written.append(name)

    main = None
    if scenarios is not None:
        from ..sweep import sweep

        analysis = {"parameters": "parameters", "evidence": "evidence", "uncertainty": "uncertainty"}[args.kind]
        opts = {}
        if args.kind == "uncertainty":
            opts = dict(targets=args.target or None, prior_strength=args.prior_strength, n_samples=args.samples,
                        level=args.level, seed=args.seed)
        elif args.kind == "parameters":
            opts = dict(target=args.target, state=args.state, method=args.method, spread=args.spread,
                        prior_strength=args.prior_strength, level=args.level)
        else:
            opts = dict(target=args.target)
        main = sweep(net, scenarios, analysis, scheduler=args.scheduler, **opts)
        save_csv(main, f"{args.kind}_sweep.csv")
    elif args.kind == "parameters":
        from ..sensitivity_plots import tornado_plot

        main = net.sensitivity(evidence, args.target, args.state, method=args.method, spread=args.spread,
                               prior_strength=args.prior_strength, level=args.level)
        save_csv(main, "tornado.csv")
        save_fig(tornado_plot(main, top=args.top), "tornado.png")
        save_csv(net.admissible_deviation(evidence, args.target), "admissible.csv")
        for i, text in enumerate(args.parameter, start=1):
            var, value, config = _parse_parameter(text)
            f = net.sensitivity_function(var, value, config, evidence, args.target, args.state)
            curve = f.curve()
            curve.insert(0, "parameter", text)
            save_csv(curve, f"function_{i}.csv")
            save_fig(f.plot(), f"function_{i}.png")
    elif args.kind == "evidence":
        main = net.evidence_sensitivity(evidence, args.target)
        save_csv(main, "evidence.csv")
        save_fig(_evidence_plot(main), "evidence.png")
    else:
        from ..uncertainty import interval_plot, recommendation_intervals

        targets = args.target or None
        main = net.posterior_intervals(evidence, targets, prior_strength=args.prior_strength,
                                       n_samples=args.samples, level=args.level, seed=args.seed)
        save_csv(main, "intervals.csv")
        for t in main["target"].unique():
            save_fig(interval_plot(main, t), f"intervals_{t}.png")
        if args.recommend:
            rank = recommendation_intervals(net, evidence, prior_strength=args.prior_strength,
                                            n_samples=max(10, args.samples // 4), level=args.level, seed=args.seed)
            save_csv(rank, "ranking.csv")
    (out / "config.json").write_text(json.dumps(to_jsonable(_config(args, net)), indent=2) + "\n", encoding="utf-8")
    written.append("config.json")
    if args.json:
        print_json({"config": _config(args, net), "result": main})
    else:
        print(f"wrote {', '.join(written)} to {out}")
    return 0


def _evidence_plot(table):
    """Leading-state probability per evidence scenario (flips in orange)."""
    import matplotlib.pyplot as plt
    import numpy as np

    labels = ["as observed" if r.change == "as observed" else f"{r.finding}: {r.change}" for r in table.itertuples()]
    y = np.arange(len(table))[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(table) + 1.5))
    colors = ["#DD8452" if f else "#4C72B0" for f in table["flips"]]
    ax.barh(y, table["p_leader"].fillna(0), color=colors)
    for yi, lead in zip(y, table["leader"]):
        ax.text(0.01, yi, str(lead), va="center", fontsize=7, color="white")
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"P(leading {table.attrs.get('target', '')} | e); orange: the leader changes")
    fig.tight_layout()
    return ax
