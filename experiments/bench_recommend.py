"""Benchmark: ranking every test group for one case (model.recommend) vs per-outcome references.

For each network and case it times, as wall-clock medians:

* ``lesionbn``  -- ``recommend(net, evidence, target)`` (one-step ranking of every available
  test group, exact), with and without the outcome preview, and once with ``lookahead=2``;
  also the median process CPU time (``time.process_time``) of the ranking, which excludes time
  spent waiting for a core on a shared machine (run with OPENBLAS_NUM_THREADS=1 so that CPU time
  is not inflated by BLAS threads);
* ``pgmpy VE``  -- the textbook way: for each group, ``P(G | e)`` by one joint VE query, then
  one VE query ``P(T | e, o)`` per outcome ``o`` (pgmpy ``VariableElimination``);
* ``pyAgrum``   -- the same per-outcome loop with ``LazyPropagation`` (posterior and
  ``evidenceProbability`` per outcome), when pyagrum is installed.

The references' expected information gains are compared with lesionbn's (max |difference|).
Networks: the default motor-lesion network (``model.load_network()``) and alarm (bundled with
pgmpy, read by path; a generic network: every unobserved non-target variable is a test).

    python experiments/bench_recommend.py            # full run
    python experiments/bench_recommend.py --quick    # fewer repeats; references once
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
warnings.filterwarnings("ignore")

from model import load_network  # noqa: E402
from model.recommend import recommend  # noqa: E402

CASES = {
    "motor_lesion": [
        ("cord, day 1", "lesion_site", {"onset_tempo": "acute", "time_since_onset": "lt_3d",
                                        "weakness_topography": "both_legs", "reflexes_legs": "absent",
                                        "tone": "flaccid", "sensory_loss": "sensory_level"}),
        ("fatigable ptosis", "disease", {"weakness_pattern": "fatigable", "ocular_ptosis_diplopia": "present",
                                         "bulbar_signs": "fatigable"}),
        ("no findings", "lesion_site", {}),
    ],
    "alarm": [
        ("low BP, low CVP", "HYPOVOLEMIA", {"BP": "LOW", "CVP": "LOW"}),
        ("no findings", "LVFAILURE", {}),
    ],
}


def median_time(fn, repeats, clock=time.perf_counter):
    ts = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        ts.append(clock() - t0)
    return statistics.median(ts)


def groups_for(rec):
    return {name: tuple(vs) for name, vs in rec["variables"].items()}


def mi(q0, outcomes):
    """sum_o p_o KL(q_o || q0) in bits."""
    total = 0.0
    for p, q in outcomes:
        if p > 0:
            nz = q > 0
            total += p * float(np.sum(q[nz] * np.log2(q[nz] / q0[nz])))
    return total


def pgmpy_gains(net, evidence, target, groups):
    from pgmpy.inference import VariableElimination

    ve = VariableElimination(net.model)
    states = net.states

    def post(ev):
        f = ve.query([target], evidence=ev or None, show_progress=False)
        return np.array([f.get_value(**{target: s}) for s in states[target]])

    q0 = post(evidence)
    out = {}
    for name, vs in groups.items():
        joint = ve.query(list(vs), evidence=evidence or None, joint=True, show_progress=False)
        outs = []
        for combo in itertools.product(*(states[v] for v in vs)):
            o = dict(zip(vs, combo))
            p = float(joint.get_value(**o))
            outs.append((p, post({**evidence, **o}) if p > 0 else None))
        out[name] = mi(q0, outs)
    return out


def to_pyagrum(net):
    import pyagrum as gum

    bn = gum.BayesNet(net.name)
    for v in net.variables:
        bn.add(gum.LabelizedVariable(v, v, list(net.states[v])))
    for v in net.variables:
        for p in net.parents(v):
            bn.addArc(p, v)
    tables = net.knowledge.tables()
    for v in net.variables:
        vals = tables[v]
        pars = net.parents(v)
        if not pars:
            bn.cpt(v).fillWith(vals.tolist())
            continue
        for idx in np.ndindex(*vals.shape[1:]):
            bn.cpt(v)[{p: net.states[p][i] for p, i in zip(pars, idx)}] = vals[(slice(None), *idx)].tolist()
    return bn


def pyagrum_gains(bn, net, evidence, target, groups):
    import pyagrum as gum

    ie = gum.LazyPropagation(bn)
    ie.addTarget(target)          # only the target's posterior is needed (10x faster than all nodes)

    def run(ev):
        ie.eraseAllEvidence()
        if ev:
            ie.setEvidence(ev)
        ie.makeInference()
        pe = ie.evidenceProbability() if ev else 1.0
        return pe, np.asarray(ie.posterior(target).toarray(), dtype=float)

    pe0, q0 = run(evidence)
    out = {}
    for name, vs in groups.items():
        outs = []
        for combo in itertools.product(*(net.states[v] for v in vs)):
            o = dict(zip(vs, combo))
            try:
                pe, q = run({**evidence, **o})
            except gum.GumException:   # impossible evidence
                outs.append((0.0, None))
                continue
            outs.append((pe / pe0, q))
        out[name] = mi(q0, outs)
    return out


def bench(name, net, repeats, ref_repeats, results):
    try:
        bn = to_pyagrum(net)
    except ImportError:
        bn = None
    for label, target, evidence in CASES[name]:
        recommend(net, evidence, target=target, k=None)   # warm the engine's plan cache
        t_fast = median_time(lambda: recommend(net, evidence, target=target, k=None, preview=False), repeats)
        t_cpu = median_time(lambda: recommend(net, evidence, target=target, k=None, preview=False), repeats,
                            clock=time.process_time)
        t_prev = median_time(lambda: recommend(net, evidence, target=target, k=None), repeats)
        rec = recommend(net, evidence, target=target, k=None)
        groups = groups_for(rec)
        n_out = int(rec["n_outcomes"].sum())
        t_la = median_time(lambda: recommend(net, evidence, target=target, k=None, lookahead=2), 1)
        ours = rec["gain"].to_dict()
        ref = {}
        t_pg = median_time(lambda: ref.update(pgmpy=pgmpy_gains(net, evidence, target, groups)), ref_repeats)
        row = {"network": name, "case": label, "target": target, "groups": len(groups), "outcomes": n_out,
               "lesionbn_ms": 1e3 * t_fast, "lesionbn_cpu_ms": 1e3 * t_cpu, "lesionbn_preview_ms": 1e3 * t_prev,
               "lesionbn_lookahead2_ms": 1e3 * t_la, "pgmpy_ve_ms": 1e3 * t_pg,
               "pgmpy_max_gain_diff": max(abs(ours[g] - ref["pgmpy"][g]) for g in groups) if groups else 0.0}
        if bn is not None:
            t_ag = median_time(lambda: ref.update(pyagrum=pyagrum_gains(bn, net, evidence, target, groups)),
                               max(ref_repeats, 3))
            row["pyagrum_ms"] = 1e3 * t_ag
            row["pyagrum_max_gain_diff"] = max(abs(ours[g] - ref["pyagrum"][g]) for g in groups) if groups else 0.0
        row["top3"] = list(rec.index[:3])
        results.append(row)
        print(f"{name:13s} {label:18s} {target:12s} groups={len(groups):3d} outcomes={n_out:4d}  "
              f"lesionbn {row['lesionbn_ms']:6.1f} ms (CPU {row['lesionbn_cpu_ms']:5.1f}; preview {row['lesionbn_preview_ms']:6.1f}; "
              f"lookahead=2 {row['lesionbn_lookahead2_ms']:8.0f})  pgmpy VE {row['pgmpy_ve_ms']:8.0f} ms"
              + (f"  pyAgrum {row['pyagrum_ms']:7.1f} ms" if "pyagrum_ms" in row else "")
              + f"  |dgain| <= {max(row['pgmpy_max_gain_diff'], row.get('pyagrum_max_gain_diff', 0)):.1e}",
              flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--repeats", type=int, default=None, help="repeats of the lesionbn timing (default 30, quick 7)")
    ap.add_argument("--skip-alarm", action="store_true")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args(argv)
    repeats = args.repeats or (7 if args.quick else 30)
    ref_repeats = 1 if args.quick else 3
    results = []
    print(f"median wall-clock times; lesionbn over {repeats} runs, references over {ref_repeats}+ runs\n")
    bench("motor_lesion", load_network(), repeats, ref_repeats, results)
    if not args.skip_alarm:
        import pgmpy

        path = os.path.join(os.path.dirname(pgmpy.__file__), "utils", "example_models", "alarm.bif.gz")
        if os.path.exists(path):
            bench("alarm", load_network(path), repeats, ref_repeats, results)
        else:
            print("alarm: not bundled with this pgmpy; skipped")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
