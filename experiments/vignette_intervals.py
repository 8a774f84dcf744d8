"""Credible intervals of the lesion-site posterior for every public vignette.

Every CPT row is given a Dirichlet distribution (``prior_strength`` x the row: how many cases
the expert numbers are worth); networks are sampled from it (seeded) and the exact posterior of
``lesion_site`` is recomputed for all vignettes at once on each sampled network
(``model.uncertainty.posterior_intervals``). Reported per vignette and site: the posterior, the
mean, the central credible interval and ``p_top`` (share of sampled networks in which the site
is the most probable one), with whether the site is an accepted answer.

Writes ``site_intervals.csv`` (every vignette x site), ``summary.csv`` (one row per vignette:
top site, its interval, p_top, accepted or not), ``vignette_intervals.png`` and ``config.json``.
Runs locally, or on a Dask cluster with ``--scheduler tcp://host:port``. Public API only.

    python experiments/vignette_intervals.py                     # -> results/vignette_intervals/
    python experiments/vignette_intervals.py --prior-strength 50 --samples 500 --seed 1
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from model import load_network  # noqa: E402
from model.sweep import sweep  # noqa: E402
from model.vignettes import load_vignettes  # noqa: E402

NAME = "vignette_intervals"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=f"results/{NAME}", help=f"results folder (default results/{NAME}/)")
    ap.add_argument("--network", default=None, help="knowledge/BIF file (default: the default network)")
    ap.add_argument("--vignettes", default=None, help="vignette file or folder (default: data/vignettes)")
    ap.add_argument("--target", default="lesion_site")
    ap.add_argument("--prior-strength", type=float, default=20.0, help="Dirichlet equivalent sample size (20)")
    ap.add_argument("--samples", type=int, default=300, help="sampled networks (300)")
    ap.add_argument("--level", type=float, default=0.9, help="credible level (0.9)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scheduler", default=None, help="Dask scheduler address (default: run locally)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net = load_network(args.network)
    vignettes = load_vignettes(args.vignettes)
    df = sweep(net, vignettes, "uncertainty", scheduler=args.scheduler, targets=args.target,
               prior_strength=args.prior_strength, n_samples=args.samples, level=args.level, seed=args.seed)
    accepted = {v.id: v.accepted(args.target) for v in vignettes}
    df["accepted"] = [s in accepted[c] for c, s in zip(df.scenario, df.state)]
    df = df.rename(columns={"scenario": "vignette"})
    df.to_csv(out / "site_intervals.csv", index=False)

    rows = []
    for vid, part in df.groupby("vignette", sort=False):
        top = part.loc[part.posterior.idxmax()]
        rows.append({"vignette": vid, "top_site": top.state, "posterior": top.posterior, "low": top.low,
                     "high": top.high, "width": top.high - top.low, "p_top": top.p_top,
                     "accepted": bool(top.accepted) if accepted[vid] else None,
                     "expected": ", ".join(sorted(accepted[vid])) or "(not scored)"})
    summary = pd.DataFrame(rows)
    summary.to_csv(out / "summary.csv", index=False)
    figure(summary, out / "vignette_intervals.png", args)
    config = {"experiment": NAME, "argv": sys.argv[1:] if argv is None else argv, **vars(args),
              "network": net.name, "network_version": net.version, "vignettes": len(vignettes)}
    (out / "config.json").write_text(json.dumps(config, indent=2, default=str) + "\n", encoding="utf-8")
    scored = summary[summary.accepted.notna()]
    print(f"{len(summary)} vignettes ({len(scored)} scored for {args.target}): median width of the top site's "
          f"{int(round(100 * args.level))}% interval {summary.width.median():.3f}; top site leads in >= 80% of "
          f"sampled networks for {(summary.p_top >= 0.8).mean():.0%} of vignettes; "
          f"accepted top site: {scored.accepted.astype(bool).mean():.0%}, of which robust (p_top >= 0.8): "
          f"{(scored.accepted.astype(bool) & (scored.p_top >= 0.8)).mean():.0%}")
    print(f"wrote site_intervals.csv, summary.csv, vignette_intervals.png, config.json to {out}")
    return 0


def figure(summary: pd.DataFrame, path: Path, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summary.iloc[::-1].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8, 0.22 * len(s) + 1.5))
    y = np.arange(len(s))
    colors = ["#55A868" if a is True else "#C44E52" if a is False else "#8C8C8C" for a in s.accepted]
    ax.errorbar(s.posterior, y, xerr=[s.posterior - s.low, s.high - s.posterior], fmt="none", ecolor="#888888")
    ax.scatter(s.posterior, y, c=colors, s=18, zorder=3)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{v}: {t}" for v, t in zip(s.vignette, s.top_site)], fontsize=6)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"P(top {args.target} | vignette), {int(round(100 * args.level))}% credible interval "
                  f"(prior strength {args.prior_strength:g})\ngreen: an accepted answer; red: not accepted", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
