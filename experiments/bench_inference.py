"""Benchmark: pgmpy VariableElimination vs pyAgrum LazyPropagation vs model.engine.

Measured in one run, on the project's default network (``model.load_network()``, skipped with a
message if it does not load) and on the bnlearn networks alarm, hepar2 and win95pts bundled
with pgmpy (read by path, CPD columns renormalised):

1. one case (~30% of the findings observed, hard evidence from a forward sample): posteriors of
   every latent variable (default network: ``net.latent``) or of every node (others);
2. a batch of 10,000 cases, ~30% of the findings observed, a different subset per case:
   posteriors of the latent variables (others: ~5 root/internal targets, leaves observed).
   The engine runs the whole batch; pyAgrum and pgmpy run a per-case loop on a subsample,
   scaled to 10,000 (the table says how many cases were really run);
3. engine compile time (conversion + plan compilation) and peak Python memory of the batch
   (tracemalloc; numpy allocations are traced, pyAgrum's C++ ones are not).

Times are wall-clock medians (``--clock cpu``: CPU-time medians of this process, all threads
counted).  The engine runs batches on a pool of ``--threads`` workers (default: the process's
cores; pyAgrum also uses its default of one thread per core); ``--threads 1`` measures it on
one core.  Answers of the three tools are cross-checked on the first case.
pyAgrum is used as intended: one LazyPropagation per network with ``setTargets`` (3x faster
than computing every posterior), ``eraseAllEvidence`` + ``setEvidence`` per case.

    python experiments/bench_inference.py            # full run
    python experiments/bench_inference.py --quick    # fewer repeats and smaller subsamples
    python experiments/bench_inference.py --json out.json
    python experiments/bench_inference.py --threads 1   # the engine on one core
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import tracemalloc
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
warnings.filterwarnings("ignore")

from model.engine import InferenceEngine  # noqa: E402
from model.engine.core import default_threads  # noqa: E402

BUNDLED = ("alarm", "hepar2", "win95pts")


CLOCK = time.perf_counter  # --clock cpu switches to time.process_time


def median_time(fn, repeats):
    ts = []
    for _ in range(repeats):
        t0 = CLOCK()
        fn()
        ts.append(CLOCK() - t0)
    return statistics.median(ts)


def to_pyagrum(model, order, states):
    """pyAgrum BayesNet built in memory from a pgmpy model (full float64 tables)."""
    import pyagrum as gum

    bn = gum.BayesNet("bench")
    for v in order:
        bn.add(gum.LabelizedVariable(v, v, [str(s) for s in states[v]]))
    for v in order:
        for p in model.get_cpds(v).variables[1:]:
            bn.addArc(p, v)
    for v in order:
        cpd = model.get_cpds(v)
        vals = np.asarray(cpd.get_values(), dtype=float).reshape(cpd.cardinality)
        pars = list(cpd.variables[1:])
        if not pars:
            bn.cpt(v).fillWith(vals.tolist())
            continue
        for idx in np.ndindex(*vals.shape[1:]):
            key = {p: str(states[p][i]) for p, i in zip(pars, idx)}
            bn.cpt(v)[key] = vals[(slice(None), *idx)].tolist()
    return bn


def load_networks(names, include_default):
    from helpers import example_model

    nets = []
    if include_default:
        try:
            from model import load_network

            net = load_network()
            model = net.model
            latent = list(getattr(net, "latent", None) or model.nodes())
            findings = list(getattr(net, "observable", None) or
                            [v for v in model.nodes() if v not in latent])
            nets.append(("default", model, latent, findings, latent))
        except Exception as exc:  # noqa: BLE001 - report and carry on
            print(f"[skip] default network did not load: {type(exc).__name__}: {exc}")
    for name in names:
        model = example_model(name)
        nodes = list(model.nodes())
        leaves = [v for v in nodes if not list(model.get_children(v))]
        internal = [v for v in nodes if v not in leaves]
        roots = [v for v in internal if not list(model.get_parents(v))]
        targets = (roots + [v for v in internal if v not in roots])[:5]
        nets.append((name, model, nodes, leaves, targets))
    return nets


def sample(model, n, seed):
    from pgmpy.sampling import BayesianModelSampling

    return BayesianModelSampling(model).forward_sample(n, show_progress=False, seed=seed)


def bench_network(name, model, one_targets, findings, batch_targets, args):
    from pgmpy.inference import VariableElimination

    r = {"network": name, "nodes": len(model.nodes()), "findings": len(findings)}
    rng = np.random.default_rng(0)
    n = args.cases
    data = sample(model, n, seed=1)

    t0 = time.perf_counter()
    eng = InferenceEngine.from_pgmpy(model, threads=args.threads)
    r["convert_s"] = time.perf_counter() - t0
    states = eng.state_names
    order = eng.variables

    # per-case evidence: each finding observed with probability 0.3
    mask = rng.random((n, len(findings))) < 0.3
    codes = {v: np.array([states[v].index(s) for s in data[v]]) for v in findings}
    lik = {}
    for j, v in enumerate(findings):
        L = np.eye(eng.cards[v])[codes[v]]
        L[~mask[:, j]] = 1.0
        lik[v] = L
    cases = [{v: str(data[v].iloc[i]) for j, v in enumerate(findings) if mask[i, j]}
             for i in range(n)]

    # ---- (1) one case, posteriors of one_targets
    ev0 = cases[0]
    lik0 = {v: np.eye(eng.cards[v])[states[v].index(s)] for v, s in ev0.items()}
    t0 = time.perf_counter()
    res0 = eng.query(lik0, one_targets)
    r["compile_one_s"] = time.perf_counter() - t0
    r["one_engine_s"] = median_time(lambda: eng.query(lik0, one_targets), args.repeats * 5)

    ve = VariableElimination(model)
    ve_targets = [t for t in one_targets if t not in ev0]

    def run_ve():
        return {t: ve.query([t], evidence=ev0 or None, show_progress=False) for t in ve_targets}
    ve_out = run_ve()
    r["one_ve_s"] = median_time(run_ve, max(1, args.repeats // 2))
    err_ve = max(float(np.max(np.abs(
        np.array([ve_out[t].get_value(**{t: s}) for s in states[t]]) - res0.marginals[t][0])))
        for t in ve_targets) if ve_targets else 0.0

    try:
        import pyagrum as gum

        bn = to_pyagrum(model, order, states)
        ie = gum.LazyPropagation(bn)
        ie.setTargets(set(one_targets))  # restricting targets makes pyAgrum ~3x faster

        def run_gum(ev):
            ie.eraseAllEvidence()
            if ev:
                ie.setEvidence(ev)
            ie.makeInference()
            return {t: ie.posterior(t).toarray() for t in one_targets}
        gum_out = run_gum(ev0)
        r["one_pyagrum_s"] = median_time(lambda: run_gum(ev0), args.repeats * 5)
        err_gum = max(float(np.max(np.abs(gum_out[t] - res0.marginals[t][0]))) for t in one_targets)
    except ImportError:
        ie, err_gum = None, float("nan")
        print("[skip] pyagrum not installed")
    r["max_abs_diff_vs_ve"] = err_ve
    r["max_abs_diff_vs_pyagrum"] = err_gum

    # ---- (2) batch of n cases, posteriors of batch_targets
    # compile = build a fresh engine (incl. the support merge) and its plan for this batch
    t0 = time.perf_counter()
    fresh = InferenceEngine.from_pgmpy(model, threads=args.threads)
    fresh.plan_info([v for v, L in lik.items() if not np.all(L == 1.0)], batch_targets)
    r["compile_batch_s"] = time.perf_counter() - t0
    eng.query(lik, batch_targets)
    r["batch_engine_s"] = median_time(lambda: eng.query(lik, batch_targets), args.repeats)
    c0 = time.process_time()
    eng.query(lik, batch_targets)
    r["batch_engine_cpu_s"] = time.process_time() - c0
    tracemalloc.start()
    eng.query(lik, batch_targets)
    r["batch_engine_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()

    if ie is not None:
        sub = cases[:args.pyagrum_cases]
        ie2 = gum.LazyPropagation(bn)
        ie2.setTargets(set(batch_targets))

        def loop_gum():
            for ev in sub:
                ie2.eraseAllEvidence()
                if ev:
                    ie2.setEvidence(ev)
                ie2.makeInference()
                for t in batch_targets:
                    ie2.posterior(t)
        t = median_time(loop_gum, 1)
        r["batch_pyagrum_s"] = t * n / len(sub)
        r["batch_pyagrum_cases_run"] = len(sub)

    sub = cases[:args.ve_cases]

    def loop_ve():
        for ev in sub:
            for t in batch_targets:
                if t not in ev:
                    ve.query([t], evidence=ev or None, show_progress=False)
    r["batch_ve_s"] = median_time(loop_ve, 1) * n / len(sub)
    r["batch_ve_cases_run"] = len(sub)
    r["cases"] = n
    r["one_targets"] = len(one_targets)
    r["batch_targets"] = len(batch_targets)
    info = eng.plan_info([v for v in lik], batch_targets)
    r["largest_clique_states"] = info["largest_node"]
    return r


def fmt_table(rows):
    lines = []
    head = ("network", "nodes", "one case: VE", "pyAgrum", "engine", "VE/eng", "gum/eng",
            "batch: VE*", "pyAgrum*", "engine", "cases/s", "gum/eng", "compile", "peak MB")
    lines.append(" | ".join(head))
    lines.append(" | ".join("---" for _ in head))
    for r in rows:
        g1 = r.get("one_pyagrum_s", float("nan"))
        gb = r.get("batch_pyagrum_s", float("nan"))
        lines.append(" | ".join([
            r["network"], str(r["nodes"]),
            f"{r['one_ve_s'] * 1e3:.1f} ms", f"{g1 * 1e3:.2f} ms", f"{r['one_engine_s'] * 1e3:.2f} ms",
            f"{r['one_ve_s'] / r['one_engine_s']:.0f}x", f"{g1 / r['one_engine_s']:.2f}x",
            f"{r['batch_ve_s']:.0f} s", f"{gb:.1f} s", f"{r['batch_engine_s'] * 1e3:.0f} ms",
            f"{r['cases'] / r['batch_engine_s']:,.0f}", f"{gb / r['batch_engine_s']:.0f}x",
            f"{(r['convert_s'] + r['compile_batch_s']) * 1e3:.0f} ms",
            f"{r['batch_engine_peak_mb']:.0f}"]))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, smaller subsamples")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--networks", nargs="*", default=list(BUNDLED),
                    help="bundled bnlearn networks to run (default: alarm hepar2 win95pts)")
    ap.add_argument("--no-default", action="store_true", help="skip the project's default network")
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall-clock (default) or CPU time of this process (all threads)")
    ap.add_argument("--threads", type=int, default=None,
                    help="engine threads for batches (default: the cores this process may use, at most 4)")
    args = ap.parse_args(argv)
    global CLOCK
    CLOCK = time.perf_counter if args.clock == "wall" else time.process_time
    args.repeats = 3 if args.quick else 7
    args.pyagrum_cases = 200 if args.quick else 1000
    args.ve_cases = 5 if args.quick else 20

    try:
        import pyagrum as gum

        gum_threads = gum.getNumberOfThreads()
    except ImportError:
        gum_threads = None
    print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f} quick={args.quick} "
          f"clock={args.clock} pyagrum_threads={gum_threads} "
          f"engine_threads={args.threads or default_threads()} engine_blas_threads=1 (batches)")
    rows = []
    for name, model, one_t, findings, batch_t in load_networks(args.networks, not args.no_default):
        t0 = time.perf_counter()
        r = bench_network(name, model, one_t, findings, batch_t, args)
        rows.append(r)
        print(f"[{name}] done in {time.perf_counter() - t0:.0f} s; largest clique "
              f"{r['largest_clique_states']} states; max |diff| vs VE {r['max_abs_diff_vs_ve']:.1e}, "
              f"vs pyAgrum {r['max_abs_diff_vs_pyagrum']:.1e}; engine batch CPU "
              f"{r['batch_engine_cpu_s'] * 1e3:.0f} ms", flush=True)
    print()
    print("one case = posteriors of every latent variable (default network) or every node; "
          f"batch = {args.cases:,} cases, ~30% of findings observed per case, latent targets "
          "(default) or 5 root/internal targets with leaves observed.")
    print(f"* per-case loops run on a subsample and scaled to {args.cases:,} cases: pyAgrum "
          f"{args.pyagrum_cases} cases, pgmpy VE {args.ve_cases} cases. compile = pgmpy->engine "
          "conversion + batch plan compilation; peak MB = tracemalloc peak of the engine batch.")
    print()
    print(fmt_table(rows))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"quick": args.quick, "clock": args.clock, "rows": rows}, fh, indent=2)
    return rows


if __name__ == "__main__":
    main()
