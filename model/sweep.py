"""Sweeps: one analysis over many scenarios, locally or on a Dask distributed cluster.

A *scenario* is one evidence set: a row of a cases table, a vignette, a point of an evidence
grid, a simulated patient. :func:`sweep` runs an analysis over every scenario and returns one
tidy DataFrame with a ``scenario`` column. By default it runs in this process; given the
address of a running Dask scheduler (``scheduler="tcp://host:8786"``) or a
``dask.distributed.Client``, it sends chunks of scenarios to the workers (the network is sent
once per worker) and gathers the results in scenario order. The answers are the same either
way: every analysis is exact or, for ``"uncertainty"``, seeded per variable (see
:mod:`model.uncertainty`), so chunking does not change a number.

    >>> from model import load_network
    >>> net = load_network()
    >>> grid = evidence_grid(net, {"babinski": ["present", "absent"], "fasciculations": ["present", "absent"]})
    >>> df = sweep(net, grid, "posterior", targets="lesion_type")     # doctest: +SKIP
    >>> df = sweep(net, grid, "uncertainty", scheduler="tcp://10.0.0.5:8786", n_samples=200)  # doctest: +SKIP

Analyses (``ANALYSES``): ``posterior``, ``uncertainty`` (posterior_intervals), ``parameters``
(parameter_sensitivity), ``admissible`` (admissible_deviation), ``evidence``
(evidence_sensitivity), ``recommend`` (net.recommend as a table: test, rank, gain, ...) and
``ranking`` (recommendation_intervals). Options are passed on as keyword arguments.
"""
from __future__ import annotations

import copy
import itertools
import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import EvidenceError
from .evidence import is_missing

__all__ = ["sweep", "evidence_grid", "scenarios_from", "ANALYSES"]

ANALYSES = ("posterior", "uncertainty", "parameters", "admissible", "evidence", "recommend", "ranking")


def evidence_grid(net, axes: Mapping[str, Sequence[str]], base: Mapping[str, Any] | None = None) -> list[tuple[str, dict]]:
    """Every combination of the given findings' states (``None``/"" = not observed), on top of
    ``base``; returns ``[(scenario id, evidence), ...]``."""
    names = list(axes)
    out = []
    for combo in itertools.product(*(axes[n] for n in names)):
        ev = dict(base or {})
        for n, s in zip(names, combo):
            if s is None or s == "":
                ev.pop(n, None)
            else:
                ev[n] = s
        sid = ", ".join(f"{n}={s if s not in (None, '') else '?'}" for n, s in zip(names, combo))
        out.append((sid, ev))
    return out


def scenarios_from(scenarios) -> list[tuple[str, dict]]:
    """Normalise scenarios: a cases DataFrame (``case_id`` column or the index names them), a
    mapping id -> evidence, a list of evidence mappings, or a list of (id, evidence) pairs."""
    if isinstance(scenarios, pd.DataFrame):
        ids = scenarios["case_id"].astype(str).tolist() if "case_id" in scenarios.columns else \
            [str(i) for i in scenarios.index]
        cols = [c for c in scenarios.columns if c != "case_id"]
        out = []
        for sid, row in zip(ids, scenarios[cols].itertuples(index=False, name=None)):
            out.append((sid, {c: v for c, v in zip(cols, row) if not is_missing(v)}))
        return out
    if isinstance(scenarios, Mapping):
        return [(str(k), dict(v)) for k, v in scenarios.items()]
    out = []
    for i, item in enumerate(scenarios):
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Mapping):
            out.append((str(item[0]), dict(item[1])))
        elif isinstance(item, Mapping):
            out.append((f"s{i + 1}", dict(item)))
        elif hasattr(item, "evidence") and hasattr(item, "id"):  # a Vignette
            out.append((str(item.id), dict(item.evidence)))
        else:
            raise EvidenceError(f"scenario {i + 1}: expected an evidence mapping or (id, evidence), got {type(item).__name__}")
    return out


def _run_chunk(net, analysis: str, chunk: list[tuple[str, dict]], options: dict) -> pd.DataFrame:
    """One chunk of scenarios (also the task a Dask worker runs)."""
    from . import sensitivity, uncertainty

    ids = [sid for sid, _ in chunk]
    if analysis == "posterior":
        from .uncertainty import _stack, _targets

        targets = _targets(net, options.get("targets"))
        lik, n, _ = _stack(net, [ev for _, ev in chunk])
        res = net.engine.query(lik, targets, n_cases=n)
        rows = []  # scenario-major, then targets in the given order
        for i, sid in enumerate(ids):
            for t in targets:
                for s, p in zip(net.states[t], np.asarray(res.marginals[t])[i]):
                    rows.append((sid, t, s, float(p)))
        return pd.DataFrame(rows, columns=["scenario", "target", "state", "posterior"])
    if analysis == "uncertainty":
        df = uncertainty.posterior_intervals(net, [ev for _, ev in chunk], **options)
        df["case"] = np.asarray(ids, dtype=object)[df["case"].to_numpy(dtype=int)]
        return df.rename(columns={"case": "scenario"})
    if analysis == "recommend":
        options = {"k": None, "preview": False, **options}
        fn = _recommend_table
    else:
        fn = {"parameters": sensitivity.parameter_sensitivity, "admissible": sensitivity.admissible_deviation,
              "evidence": sensitivity.evidence_sensitivity, "ranking": uncertainty.recommendation_intervals}[analysis]
    frames = []
    for sid, ev in chunk:
        df = fn(net, ev, **options)
        df.insert(0, "scenario", sid)
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _recommend_table(net, evidence, **options) -> pd.DataFrame:
    """``net.recommend`` as a plain table: test, rank, then the recommendation's numeric columns."""
    rec = net.recommend(evidence, **options)
    keep = [c for c in ("label", "gain", "p_change", "p_threshold", "cost", "score") if c in rec.columns]
    out = rec[keep].reset_index(names="test")
    out.insert(1, "rank", np.arange(1, len(out) + 1))
    out.attrs.update(rec.attrs)
    return out


def _portable(net):
    """A copy of ``net`` without its compiled engine (rebuilt lazily on the worker)."""
    twin = copy.copy(net)
    twin.__dict__.pop("engine", None)
    return twin


def sweep(net, scenarios, analysis: str = "posterior", scheduler: str | Any | None = None,
          chunk_size: int | None = None, **options) -> pd.DataFrame:
    """Run ``analysis`` for every scenario; locally, or on a Dask cluster when ``scheduler`` is given.

    Parameters
    ----------
    net : Network
    scenarios : DataFrame, mapping, or list
        See :func:`scenarios_from`.
    analysis : one of :data:`ANALYSES`
    scheduler : str or dask.distributed.Client, optional
        Address of a running Dask scheduler (``tcp://host:port``) or a connected client.
    chunk_size : int, optional
        Scenarios per task (default: all at once locally; about four tasks per worker on a cluster).
    **options
        Passed to the analysis (e.g. ``targets``, ``n_samples``, ``seed`` for ``uncertainty``;
        ``target`` for the sensitivity analyses).

    Returns
    -------
    DataFrame with a ``scenario`` column first, scenarios in the given order.
    """
    if analysis not in ANALYSES:
        raise ValueError(f"analysis {analysis!r} is not one of {', '.join(ANALYSES)}")
    items = scenarios_from(scenarios)
    if not items:
        raise EvidenceError("no scenarios to sweep")
    if scheduler is None:
        size = chunk_size or len(items)
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        return pd.concat([_run_chunk(net, analysis, c, options) for c in chunks], ignore_index=True)
    return _sweep_dask(net, items, analysis, scheduler, chunk_size, options)


def _sweep_dask(net, items, analysis, scheduler, chunk_size, options) -> pd.DataFrame:
    try:
        from dask.distributed import Client
    except ImportError as exc:  # pragma: no cover
        raise ImportError("a scheduler was given but dask.distributed is not installed; "
                          "pip install 'lesionbn[dask]'") from exc
    own = not hasattr(scheduler, "submit")
    client = Client(scheduler) if own else scheduler
    try:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        size = chunk_size or max(1, math.ceil(len(items) / (4 * n_workers)))
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        # hash=False: a fresh key per sweep. A content-hashed key is shared with other clients of
        # the cluster, and one of them closing releases it under the others ("lost dependencies").
        net_f = client.scatter(_portable(net), broadcast=True, hash=False)
        futures = [client.submit(_run_chunk, net_f, analysis, c, options, pure=False) for c in chunks]
        parts = client.gather(futures)
    finally:
        if own:
            client.close()
    return pd.concat(parts, ignore_index=True)
