"""How robust is the UMN-versus-LMN call in the first days after cord injury to the spinal-shock
numbers (the ``acute_shock`` CPT entries)?

Scenarios: every public vignette seen in the first days after onset (``time_since_onset=lt_3d``)
whose expected lesion is in the spinal cord, plus each of them re-timed to ``3d_to_3wk`` (the
same findings a week later). For each scenario and ``lesion_type``:

* every ``acute_shock`` CPT entry: its exact sensitivity function, the posterior of the leading
  lesion type when its odds are halved / increased by half, and the smallest change that makes
  another lesion type lead (admissible deviation);
* all ``acute_shock=yes`` entries of the first days scaled together (odds x 1/100 ... x 100).

Writes ``acute_shock_entries.csv``, ``odds_scaling.csv``, ``shock_robustness.png`` and
``config.json`` into the results folder. Uses the public API of ``model`` only.

    python experiments/shock_robustness.py                       # -> results/shock_robustness/
    python experiments/shock_robustness.py --out /tmp/shock --network other.yaml
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
from model.sensitivity import odds_scaling  # noqa: E402
from model.vignettes import load_vignettes  # noqa: E402

NAME = "shock_robustness"
TARGET = "lesion_type"
SHOCK = "acute_shock"
EARLY, LATER = "lt_3d", "3d_to_3wk"


def scenarios(vignettes) -> list[tuple[str, dict]]:
    out = []
    for v in vignettes:
        site = v.expected.get("lesion_site", "")
        if v.evidence.get("time_since_onset") == EARLY and site.endswith("_cord"):
            out.append((v.id, dict(v.evidence)))
            out.append((f"{v.id} (re-timed {LATER})", {**v.evidence, "time_since_onset": LATER}))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=f"results/{NAME}", help=f"results folder (default results/{NAME}/)")
    ap.add_argument("--network", default=None, help="knowledge/BIF file (default: the default network)")
    ap.add_argument("--vignettes", default=None, help="vignette file or folder (default: data/vignettes)")
    ap.add_argument("--spread", type=float, default=0.5, help="odds spread for the per-entry ranges (0.5 = +-50%%)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net = load_network(args.network)
    cases = scenarios(load_vignettes(args.vignettes))
    if not cases:
        print("no early cord-injury vignettes found", file=sys.stderr)
        return 1

    entries, scaling = [], []
    factors = np.logspace(-2, 2, 41)
    for sid, ev in cases:
        post = net.posterior(ev, TARGET)[TARGET]
        leader = post.idxmax()
        tornado = net.sensitivity(ev, TARGET, leader, spread=args.spread)
        adm = net.admissible_deviation(ev, TARGET)
        keys = ["variable", "parent_config", "state"]
        both = tornado.merge(adm[keys + ["theta_down", "leader_down", "theta_up", "leader_up", "min_change", "flip"]],
                             on=keys, how="left")
        both = both[(both.variable == SHOCK) & (both.state == "yes")]
        both = both[both.derivative.abs() > 1e-9]  # rows that can matter for this case
        both.insert(0, "scenario", sid)
        both.insert(1, "leader", leader)
        entries.append(both)
        early = ev.get("time_since_onset", EARLY)
        sc = odds_scaling(net, SHOCK, "yes", factors, ev, TARGET, where={"time_since_onset": early})
        sc.insert(0, "scenario", sid)
        scaling.append(sc)
    entries = pd.concat(entries, ignore_index=True)
    scaling = pd.concat(scaling, ignore_index=True)
    cols = ["scenario", "leader", "parent_config", "theta", "posterior", "theta_low", "p_low", "theta_high", "p_high",
            "swing", "derivative", "flip", "min_change", "a", "b", "c", "d"]
    entries[cols].to_csv(out / "acute_shock_entries.csv", index=False)
    scaling.to_csv(out / "odds_scaling.csv", index=False)
    figure(scaling, entries, out / "shock_robustness.png")
    config = {"experiment": NAME, "argv": sys.argv[1:] if argv is None else argv, "network": net.name,
              "network_version": net.version, "target": TARGET, "variable": SHOCK, "spread": args.spread,
              "scenarios": [sid for sid, _ in cases], "odds_factors": [float(f) for f in factors]}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    summary(entries, scaling)
    print(f"wrote acute_shock_entries.csv, odds_scaling.csv, shock_robustness.png, config.json to {out}")
    return 0


def summary(entries: pd.DataFrame, scaling: pd.DataFrame) -> None:
    for sid, part in entries.groupby("scenario", sort=False):
        flips = part[part.min_change.notna()]
        top = part.sort_values("swing", ascending=False).head(1)
        sc = scaling[(scaling.scenario == sid) & (scaling.target == TARGET)]
        wide = sc.pivot(index="factor", columns="state", values="posterior")
        leaders = wide.idxmax(axis=1)
        print(f"{sid}: leader {part.leader.iloc[0]} ({part.posterior.iloc[0]:.3f}); "
              f"{len(flips)}/{len(part)} shock entries can flip it within [0,1]; "
              f"largest swing {top.swing.iloc[0]:.3f} ({top.parent_config.iloc[0]}); "
              f"leader over odds x0.01..x100: {', '.join(dict.fromkeys(leaders))}")


def figure(scaling: pd.DataFrame, entries: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids = list(dict.fromkeys(scaling.scenario))
    fig, axes = plt.subplots(1, len(ids), figsize=(4.2 * len(ids), 3.8), sharey=True, squeeze=False)
    for ax, sid in zip(axes[0], ids):
        part = scaling[scaling.scenario == sid]
        wide = part.pivot(index="factor", columns="state", values="posterior")
        for state in ("UMN", "LMN", "MIXED"):
            if state in wide.columns:
                ax.plot(wide.index, wide[state], label=state)
        ax.set_xscale("log")
        ax.axvline(1.0, color="grey", ls=":")
        ax.set_title(sid, fontsize=8)
        ax.set_xlabel("odds x of acute_shock=yes (rows at this time since onset)", fontsize=8)
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel(f"P({TARGET} | findings)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
