"""Timings of the sensitivity and uncertainty analyses (the figures quoted in docs/sensitivity.md).

    python experiments/bench_sensitivity.py                 # default network, a typical case
    python experiments/bench_sensitivity.py --network alarm.bif --evidence HRBP=HIGH BP=LOW --target LVFAILURE

Reports, for one case: the number of CPT entries analysed, the time of the tornado table
(all entries, closed form from family posteriors), the same entries re-evaluated one by one with
modified tables (the naive way: two exact evaluations per entry) on a sample, the admissible
deviations, the evidence sensitivity, one sensitivity function, and the cost per sampled network
of ``posterior_intervals`` (one case and a batch of cases). Public API of ``model`` only.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model import load_network  # noqa: E402
from model.sensitivity import admissible_deviation, evidence_sensitivity, parameter_sensitivity  # noqa: E402
from model.sensitivity import sensitivity_function  # noqa: E402
from model.uncertainty import posterior_intervals  # noqa: E402

DEFAULT_EVIDENCE = ["onset_tempo=hyperacute", "time_since_onset=lt_3d", "tone=flaccid", "reflexes_legs=absent",
                    "babinski=absent", "weakness_topography=both_legs", "sensory_loss=sensory_level",
                    "sphincter_dysfunction=present"]


def timed(fn, repeat=3):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", default=None)
    ap.add_argument("--evidence", nargs="*", default=None, metavar="VAR=STATE")
    ap.add_argument("--target", default="lesion_type")
    ap.add_argument("--samples", type=int, default=100)
    args = ap.parse_args(argv)
    net = load_network(args.network)
    ev = dict(item.split("=", 1) for item in (args.evidence if args.evidence is not None else DEFAULT_EVIDENCE))
    net.posterior(ev, args.target)  # warm the engine
    t_tor, tor = timed(lambda: parameter_sensitivity(net, ev, args.target))
    print(f"{net.name}: {len(net.variables)} variables; tornado over {len(tor)} CPT entries: {t_tor * 1000:.0f} ms")
    sample = tor.head(20)
    t0 = time.perf_counter()
    for r in sample.itertuples():
        cfg = dict(p.split("=", 1) for p in r.parent_config.split(", ")) if r.parent_config else None
        sensitivity_function(net, r.variable, r.state, cfg, ev, args.target, tor.attrs["state"], method="evaluate")
    per = (time.perf_counter() - t0) / len(sample)
    print(f"  naive re-evaluation (2 modified engines per entry): {per * 1000:.1f} ms per entry "
          f"-> {per * len(tor):.1f} s for all {len(tor)} ({per * len(tor) / t_tor:.0f}x the closed form)")
    t_adm, _ = timed(lambda: admissible_deviation(net, ev, args.target))
    print(f"  admissible deviation, all entries: {t_adm * 1000:.0f} ms")
    t_ev, evs = timed(lambda: evidence_sensitivity(net, ev, args.target))
    print(f"  evidence sensitivity ({len(evs)} scenarios, one batch): {t_ev * 1000:.1f} ms")
    t_one, _ = timed(lambda: posterior_intervals(net, ev, args.target, n_samples=args.samples, seed=0), repeat=1)
    print(f"  posterior_intervals, 1 case, {args.samples} sampled networks: {t_one:.2f} s "
          f"({t_one / args.samples * 1000:.1f} ms per sampled network)")
    cases = [ev] * 64
    t_many, _ = timed(lambda: posterior_intervals(net, cases, args.target, n_samples=args.samples, seed=0), repeat=1)
    print(f"  posterior_intervals, 64 cases, {args.samples} sampled networks: {t_many:.2f} s "
          f"({t_many / args.samples * 1000:.1f} ms per sampled network)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
