"""Which test ranks first across a simulated outpatient cohort, and how stable is that ranking?

A cohort is simulated from the network (``model.cases.simulate``, seeded); each patient keeps
only what a first outpatient visit records (the bedside test groups and the context variables;
patients with a hyperacute onset are left out as emergencies). For every patient
``net.recommend`` ranks the remaining tests (value of information per cost). Reported:

* ``first_test.csv``: how often each test ranks first, and its median rank over the cohort;
* ``ranking_stability.csv``: for a seeded subsample of patients, the ranking re-computed on
  networks sampled from the Dirichlet uncertainty of the CPTs
  (``model.uncertainty.recommendation_intervals``): the share of sampled networks in which the
  patient's first test stays first (``p_first``) and the credible interval of its rank;
* ``test_ranking.png`` and ``config.json``.

Runs locally, or on a Dask cluster with ``--scheduler tcp://host:port``. Public API of ``model``.

    python experiments/test_ranking_cohort.py                    # -> results/test_ranking_cohort/
    python experiments/test_ranking_cohort.py --n 1000 --scheduler tcp://10.0.0.5:8786
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

NAME = "test_ranking_cohort"
EMERGENCY = {"onset_tempo": "hyperacute"}


def outpatient_cohort(net, n: int, seed: int) -> pd.DataFrame:
    try:
        from model.cases import bedside_tests, simulate
    except ImportError:
        sys.exit("this experiment needs the case simulator (model/cases.py: simulate, bedside_tests), "
                 "which is not in this version of lesionbn")
    cohort = simulate(net, n, seed=seed, missing="realistic")
    bedside, _ = bedside_tests(net)
    keep = {v for t in bedside for v in t.variables} | {v for v in net.variables if net.roles[v] == "context"}
    cols = ["case_id"] + [c for c in cohort.columns if c in keep]
    cohort = cohort[cols]
    for var, state in EMERGENCY.items():
        if var in cohort.columns:
            cohort = cohort[cohort[var] != state]
    return cohort.reset_index(drop=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=f"results/{NAME}", help=f"results folder (default results/{NAME}/)")
    ap.add_argument("--network", default=None, help="knowledge/BIF file (default: the default network)")
    ap.add_argument("--n", type=int, default=150, help="simulated patients before excluding emergencies (150)")
    ap.add_argument("--target", default=None, help="what the tests should inform (default: recommend's default)")
    ap.add_argument("--uncertain", type=int, default=12, help="patients re-ranked under CPT uncertainty (12)")
    ap.add_argument("--samples", type=int, default=15, help="sampled networks per patient (15)")
    ap.add_argument("--prior-strength", type=float, default=20.0, help="Dirichlet equivalent sample size (20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scheduler", default=None, help="Dask scheduler address (default: run locally)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net = load_network(args.network)
    if not hasattr(net, "recommend"):
        sys.exit("this experiment needs net.recommend (model/recommend.py), which is not in this version")
    cohort = outpatient_cohort(net, args.n, args.seed)
    ranks = sweep(net, cohort, "recommend", scheduler=args.scheduler, target=args.target)
    first = ranks[ranks["rank"] == 1]
    labels = ranks.drop_duplicates("test").set_index("test")["label"] if "label" in ranks else None
    table = pd.DataFrame({
        "n_first": first.test.value_counts(),
        "median_rank": ranks.groupby("test")["rank"].median(),
        "n_ranked": ranks.groupby("test")["rank"].size(),
    }).fillna({"n_first": 0}).astype({"n_first": int})
    table["share_first"] = table.n_first / len(cohort)
    if labels is not None:
        table.insert(0, "label", labels.reindex(table.index))
    table = table.sort_values(["n_first", "median_rank"], ascending=[False, True]).rename_axis("test").reset_index()
    table.to_csv(out / "first_test.csv", index=False)

    rng = np.random.default_rng(args.seed)
    pick = np.sort(rng.choice(len(cohort), size=min(args.uncertain, len(cohort)), replace=False))
    sub = cohort.iloc[pick]
    stab = sweep(net, sub, "ranking", scheduler=args.scheduler, target=args.target, n_samples=args.samples,
                 prior_strength=args.prior_strength, seed=args.seed)
    stab_first = stab[stab["rank"] == 1][["scenario", "test", "gain", "p_first", "mean_rank", "rank_low",
                                          "rank_high", "gain_low", "gain_high"]]
    stab_first.to_csv(out / "ranking_stability.csv", index=False)
    figure(table, stab_first, out / "test_ranking.png", len(cohort))
    config = {"experiment": NAME, "argv": sys.argv[1:] if argv is None else argv, **vars(args),
              "network": net.name, "network_version": net.version, "patients": len(cohort),
              "excluded_as_emergency": EMERGENCY, "uncertain_cases": sub.case_id.tolist()}
    (out / "config.json").write_text(json.dumps(config, indent=2, default=str) + "\n", encoding="utf-8")
    top = table.iloc[0]
    print(f"{len(cohort)} outpatients: '{top.test}' ranks first for {top.n_first} ({top.share_first:.0%}); "
          f"{table.n_first.gt(0).sum()} different tests rank first at least once")
    print(f"under CPT uncertainty ({args.samples} sampled networks, strength {args.prior_strength:g}): the first "
          f"test stays first in {stab_first.p_first.mean():.0%} of samples on average; "
          f"in >= 80% of samples for {(stab_first.p_first >= 0.8).mean():.0%} of {len(stab_first)} patients")
    print(f"wrote first_test.csv, ranking_stability.csv, test_ranking.png, config.json to {out}")
    return 0


def figure(table: pd.DataFrame, stab: pd.DataFrame, path: Path, n: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.6, 1]})
    t = table[table.n_first > 0].head(12).iloc[::-1]
    a1.barh(np.arange(len(t)), t.share_first, color="#4C72B0")
    a1.set_yticks(np.arange(len(t)))
    a1.set_yticklabels(t.get("label", t.test).fillna(t.test) if "label" in t else t.test, fontsize=8)
    a1.set_xlabel(f"share of {n} simulated outpatients for whom the test ranks first")
    a2.hist(stab.p_first, bins=np.linspace(0, 1, 11), color="#55A868", edgecolor="white")
    a2.set_xlabel("P(first test stays first), sampled CPTs")
    a2.set_ylabel("patients")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
