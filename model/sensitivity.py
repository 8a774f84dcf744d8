"""Sensitivity analysis: which numbers a conclusion hangs on.

For a query ``P(T=h | e)`` and one CPT entry ``theta = P(X=x | U=u)`` (the other entries of that
row co-varied proportionally, so the row still sums to one), the posterior is a ratio of two
functions that are *linear* in ``theta``::

    P(h | e)(theta) = (a * theta + b) / (c * theta + d)

because ``P(h, e)`` and ``P(e)`` are multilinear in the CPT entries and each joint configuration
uses exactly one entry of each row. The coefficients come in closed form from family posteriors
(``dP(e)/dtheta_{x|u} = P(x, u, e) / theta_{x|u}``)::

    c = P(x, u | e) / theta - (P(u | e) - P(x, u | e)) / (1 - theta),   d = 1 - c * theta
    a = P(x, u, h | e) / theta - (P(u, h | e) - P(x, u, h | e)) / (1 - theta),   b = P(h | e) - a * theta

(normalised so that ``c * theta0 + d = 1``). Family posteriors ``P(X, U, T | e)`` come from the
compiled engine in one batched query per family: each case clamps the parents and the target to
one configuration with one-hot likelihoods, and the engine returns ``P(X | e, u, t)`` and
``log P(e, u, t)``. Entries equal to 0 or 1 are handled by exact re-evaluation with modified
tables instead (the co-variation rule then spreads ``1 - theta`` evenly over the other states).

    >>> from model import load_network
    >>> net = load_network("alarm.bif")                                    # doctest: +SKIP
    >>> tornado = parameter_sensitivity(net, {"HRBP": "HIGH"}, "LVFAILURE")  # doctest: +SKIP
    >>> tornado.head()                                                      # doctest: +SKIP

Everything here is generic: any discrete network. :func:`evidence_sensitivity` (what if a finding
were missing or different) and :func:`odds_scaling` (several rows at once) live in
:mod:`model.whatif` and are re-exported here.
"""
from __future__ import annotations

import itertools
import weakref
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import EvidenceError, ImpossibleEvidenceError, did_you_mean
from .evidence import Evidence, check_variable, state_index, to_likelihoods

__all__ = [
    "SensitivityFunction",
    "sensitivity_function",
    "parameter_sensitivity",
    "admissible_deviation",
    "evidence_sensitivity",
    "family_posteriors",
    "odds_scaling",
    "engine_with_tables",
    "network_tables",
]

_TABLES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


# --------------------------------------------------------------------------- plumbing
def network_tables(net) -> dict[str, np.ndarray]:
    """The network's CPTs, ``tables[v]`` of shape ``(card(v), *cards(parents))`` (cached, read-only)."""
    tabs = _TABLES.get(net)
    if tabs is None:
        tabs = {v: np.asarray(t, dtype=np.float64) for v, t in net.knowledge.tables().items()}
        for t in tabs.values():
            t.setflags(write=False)
        _TABLES[net] = tabs
    return tabs


def engine_with_tables(net, tables: Mapping[str, np.ndarray]):
    """A fresh exact engine for ``net``'s structure with other CPTs (same shapes).

    Cheap: the compiled engine builds in a few milliseconds (plans compile on first query).
    Falls back to the pgmpy reference engine when the compiled engine is unavailable.
    """
    variables = net.variables
    parents = {v: net.parents(v) for v in variables}
    try:
        from .engine import InferenceEngine
    except ImportError:  # pragma: no cover - only before the compiled engine exists
        from .knowledge import from_tables, to_pgmpy
        from .reference import ReferenceEngine

        kb = from_tables(net.name, net.states, parents, tables)
        return ReferenceEngine(to_pgmpy(kb))
    cards = {v: len(net.states[v]) for v in variables}
    return InferenceEngine(variables, cards, parents, tables)


def _target(net, target: str | None) -> str:
    if target is None:
        return net.latent[0]
    return check_variable(target, net.states)


def _target_state(net, target: str, state, post: np.ndarray | None = None) -> int:
    if state is None:
        if post is None:
            raise ValueError("state is required")
        return int(np.nanargmax(post))
    return state_index(target, state, net.states)


def _config_label(parents: Sequence[str], config: Sequence[str]) -> str:
    return ", ".join(f"{p}={s}" for p, s in zip(parents, config))


def _configs(net, variable: str) -> list[tuple[str, ...]]:
    """Parent configurations of ``variable`` in table column (C) order."""
    return list(itertools.product(*(net.states[p] for p in net.parents(variable))))


def _column(net, variable: str, parent_config) -> int:
    """Column index of a parent configuration given as a mapping parent -> state (or None)."""
    parents = net.parents(variable)
    config = dict(parent_config or {})
    unknown = [p for p in config if p not in parents]
    if unknown:
        raise EvidenceError(
            f"parent_config names {unknown[0]!r}, which is not a parent of {variable!r} "
            f"(parents: {', '.join(parents) or 'none'}).{did_you_mean(unknown[0], parents)}"
        )
    missing = [p for p in parents if p not in config]
    if missing:
        raise EvidenceError(f"parent_config of {variable!r} needs a state for every parent; missing {missing}")
    col = 0
    for p in parents:
        col = col * len(net.states[p]) + state_index(p, config[p], net.states)
    return col


def _ancestors(net, roots) -> list[str]:
    keep, stack = set(), list(roots)
    while stack:
        v = stack.pop()
        if v not in keep:
            keep.add(v)
            stack.extend(net.parents(v))
    return [v for v in net.variables if v in keep]


def _log_evidence(engine, lik) -> float:
    if not lik:
        return 0.0
    res = engine.query(lik, [], n_cases=1)
    return float(res.log_evidence[0])


# --------------------------------------------------------------------------- family posteriors
def family_posteriors(net, evidence: Evidence | None = None, variables: Sequence[str] | None = None,
                      target: str | None = None, engine=None) -> tuple[dict[str, np.ndarray], float]:
    """Exact ``P(X, parents(X) [, target] | e)`` for each variable ``X``.

    Returns ``(families, log_pe)``; ``families[X]`` has shape ``(card(X), n_parent_configs)``, or
    ``(card(X), n_parent_configs, card(target))`` when ``target`` is given. One batched engine
    query per family (one case per parent (and target) configuration).

    >>> fam, log_pe = family_posteriors(net, {"dysp": "yes"}, ["tub"], target="lung")  # doctest: +SKIP
    """
    engine = engine if engine is not None else net.engine
    lik = to_likelihoods(evidence, net.states)
    log_pe = _log_evidence(engine, lik)
    if not np.isfinite(log_pe):
        raise ImpossibleEvidenceError("the evidence has probability zero under the network; no posterior exists")
    variables = net.variables if variables is None else list(variables)
    cards = {v: len(s) for v, s in net.states.items()}
    out = {}
    for x in variables:
        parents = net.parents(x)
        axes = [cards[p] for p in parents] + ([cards[target]] if target else [])
        n = int(np.prod(axes)) if axes else 1
        grid = np.indices(axes).reshape(len(axes), -1) if axes else np.zeros((0, 1), dtype=int)
        L = {v: np.broadcast_to(l, (n, cards[v])) for v, l in lik.items()}
        for i, p in enumerate(parents + ([target] if target else [])):
            onehot = np.eye(cards[p])[grid[i]]
            L[p] = onehot * L[p] if p in L else onehot
        res = engine.query(L, [x], n_cases=n)
        with np.errstate(over="ignore"):
            w = np.exp(np.asarray(res.log_evidence) - log_pe)
        m = np.nan_to_num(np.asarray(res.marginals[x], dtype=np.float64)) * w[:, None]
        n_cfg = n // cards[target] if target else n
        fam = m.T.reshape((cards[x], n_cfg, cards[target]) if target else (cards[x], n_cfg))
        out[x] = fam
    return out, log_pe


# --------------------------------------------------------------------------- coefficients
def _closed_form(theta: np.ndarray, fam: np.ndarray, post: np.ndarray):
    """Coefficients for every entry of one table at once.

    theta (cX, nU); fam = P(X, U, T | e) (cX, nU, mT); post = P(T | e) (mT,).
    Returns A, B (cX, nU, mT) and c, d (cX, nU): P(T=k|e)(theta) = (A_k th + B_k)/(c th + d).
    Entries with theta in {0, 1} are NaN.
    """
    th = theta[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        A = fam / th - (fam.sum(axis=0, keepdims=True) - fam) / (1.0 - th)
    bad = (theta <= 0) | (theta >= 1)
    A[bad] = np.nan
    B = post[None, None, :] - A * th
    c = A.sum(axis=-1)
    d = 1.0 - c * theta
    return A, B, c, d


def _covaried(row: np.ndarray, x: int, value: float) -> np.ndarray:
    """Row with entry ``x`` set to ``value`` and the others co-varied proportionally (evenly when
    they are all zero)."""
    row = np.asarray(row, dtype=np.float64)
    new = row.copy()
    rest = 1.0 - row[x]
    if rest > 0:
        new *= (1.0 - value) / rest
    else:
        new[:] = (1.0 - value) / (len(row) - 1)
    new[x] = value
    return new


def _by_evaluation(net, lik, target: str, variable: str, col: int, x: int, log_pe: float):
    """Coefficients of one entry from two exact evaluations with modified tables."""
    tables = network_tables(net)
    card = len(net.states[variable])
    base = tables[variable].reshape(card, -1)
    pts = (0.25, 0.75)
    num, den = [], []
    for th in pts:
        t2 = base.copy()
        t2[:, col] = _covaried(base[:, col], x, th)
        tabs = dict(tables)
        tabs[variable] = t2.reshape(tables[variable].shape)
        res = engine_with_tables(net, tabs).query(lik, [target], n_cases=1)
        pe = float(np.exp(res.log_evidence[0] - log_pe)) if np.isfinite(res.log_evidence[0]) else 0.0
        den.append(pe)
        num.append(np.nan_to_num(res.marginals[target][0]) * pe)
    num = np.array(num)
    A = (num[1] - num[0]) / (pts[1] - pts[0])
    B = num[0] - A * pts[0]
    c = (den[1] - den[0]) / (pts[1] - pts[0])
    d = den[0] - c * pts[0]
    return A, B, c, d


# --------------------------------------------------------------------------- one parameter
@dataclass
class SensitivityFunction:
    """``P(target=state | e)`` as a function of one CPT entry: ``(a*theta + b) / (c*theta + d)``.

    Attributes: ``variable``, ``parent_config`` (dict), ``value`` (the state of ``variable`` whose
    probability is ``theta``), ``theta0`` (its current value), ``target``, ``state``, ``a, b, c, d``
    (normalised so that ``c * theta0 + d = 1``), ``posterior`` (the value at ``theta0``) and
    ``derivative`` (``dP/dtheta`` at ``theta0``).
    """

    variable: str
    parent_config: dict
    value: str
    theta0: float
    target: str
    state: str
    a: float
    b: float
    c: float
    d: float
    numerators: dict = field(default_factory=dict, repr=False)

    def __call__(self, theta):
        theta = np.asarray(theta, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (self.a * theta + self.b) / (self.c * theta + self.d)

    @property
    def posterior(self) -> float:
        return float(self(self.theta0))

    @property
    def derivative(self) -> float:
        den = self.c * self.theta0 + self.d
        return float((self.a * self.d - self.b * self.c) / den**2)

    def curve(self, thetas=None) -> pd.DataFrame:
        """The posterior over a range of ``theta`` (default 101 points on [0, 1])."""
        thetas = np.linspace(0.0, 1.0, 101) if thetas is None else np.asarray(thetas, dtype=np.float64)
        return pd.DataFrame({"theta": thetas, "posterior": self(thetas)})

    def plot(self, ax=None, thetas=None):
        """Matplotlib line of :meth:`curve`, with the current value marked."""
        import matplotlib.pyplot as plt

        ax = ax or plt.subplots(figsize=(5, 3.5))[1]
        df = self.curve(thetas)
        ax.plot(df.theta, df.posterior)
        ax.axvline(self.theta0, color="grey", ls=":")
        ax.plot([self.theta0], [self.posterior], "o")
        cfg = _config_label(list(self.parent_config), list(self.parent_config.values()))
        ax.set_xlabel(f"P({self.variable}={self.value}" + (f" | {cfg})" if cfg else ")"))
        ax.set_ylabel(f"P({self.target}={self.state} | e)")
        ax.set_ylim(-0.02, 1.02)
        return ax


def sensitivity_function(net, variable: str, value: str, parent_config: Mapping[str, str] | None = None,
                         evidence: Evidence | None = None, target: str | None = None, state: str | None = None,
                         method: str = "auto") -> SensitivityFunction:
    """The exact sensitivity function of ``P(target=state | evidence)`` in ``P(variable=value | parent_config)``.

    ``method="closed"`` uses family posteriors (entries strictly between 0 and 1), ``"evaluate"``
    two exact evaluations with modified CPTs, ``"auto"`` the first when it applies.

    >>> f = sensitivity_function(net, "lung", "yes", {"smoke": "yes"}, {"dysp": "yes"}, "lung", "yes")  # doctest: +SKIP
    >>> f.curve([0.05, 0.1, 0.2])                                                                     # doctest: +SKIP
    """
    check_variable(variable, net.states)
    target = _target(net, target)
    x = state_index(variable, value, net.states)
    col = _column(net, variable, parent_config)
    lik = to_likelihoods(evidence, net.states)
    post = net.engine.query(lik, [target], n_cases=1)
    if not bool(post.possible[0]):
        raise ImpossibleEvidenceError("the evidence has probability zero under the network; no posterior exists")
    p_t = np.asarray(post.marginals[target][0])
    h = _target_state(net, target, state, p_t)
    theta = network_tables(net)[variable].reshape(len(net.states[variable]), -1)
    t0 = float(theta[x, col])
    if method not in ("auto", "closed", "evaluate"):
        raise ValueError("method must be 'auto', 'closed' or 'evaluate'")
    if method == "closed" and not 0 < t0 < 1:
        raise ValueError(f"the closed form needs 0 < theta < 1; this entry is {t0}")
    if method != "evaluate" and 0 < t0 < 1:
        fam, _ = family_posteriors(net, evidence, [variable], target=target)
        A, B, c, d = _closed_form(theta, fam[variable], p_t)
        A, B, c, d = A[x, col], B[x, col], c[x, col], d[x, col]
    else:
        A, B, c, d = _by_evaluation(net, lik, target, variable, col, x, float(post.log_evidence[0]))
    parents = net.parents(variable)
    cfg = dict(zip(parents, _configs(net, variable)[col]))
    return SensitivityFunction(
        variable=variable, parent_config=cfg, value=net.states[variable][x], theta0=t0, target=target,
        state=net.states[target][h], a=float(A[h]), b=float(B[h]), c=float(c), d=float(d),
        numerators={s: (float(A[k]), float(B[k])) for k, s in enumerate(net.states[target])},
    )


# --------------------------------------------------------------------------- all parameters
def _all_coefficients(net, evidence, target, include_deterministic):
    """Rows (variable, col, x) and coefficient arrays for every relevant CPT entry."""
    lik = to_likelihoods(evidence, net.states)
    post = net.engine.query(lik, [target], n_cases=1)
    if not bool(post.possible[0]):
        raise ImpossibleEvidenceError("the evidence has probability zero under the network; no posterior exists")
    p_t = np.asarray(post.marginals[target][0])
    log_pe = float(post.log_evidence[0])
    relevant = _ancestors(net, list(lik) + [target])
    fams, _ = family_posteriors(net, evidence, relevant, target=target)
    tables = network_tables(net)
    rows, As, Bs, cs, ds = [], [], [], [], []
    for v in relevant:
        theta = tables[v].reshape(len(net.states[v]), -1)
        A, B, c, d = _closed_form(theta, fams[v], p_t)
        configs = _configs(net, v)
        label = [_config_label(net.parents(v), cfg) for cfg in configs]
        for col in range(theta.shape[1]):
            for x in range(theta.shape[0]):
                t0 = float(theta[x, col])
                if not 0 < t0 < 1:
                    if not include_deterministic:
                        continue
                    a_, b_, c_, d_ = _by_evaluation(net, lik, target, v, col, x, log_pe)
                else:
                    a_, b_, c_, d_ = A[x, col], B[x, col], c[x, col], d[x, col]
                rows.append((v, label[col], net.states[v][x], t0))
                As.append(a_)
                Bs.append(b_)
                cs.append(c_)
                ds.append(d_)
    frame = pd.DataFrame(rows, columns=["variable", "parent_config", "state", "theta"])
    mT = len(p_t)
    A = np.array(As).reshape(-1, mT)
    B = np.array(Bs).reshape(-1, mT)
    return frame, A, B, np.array(cs), np.array(ds), p_t


def _plausible_range(theta: np.ndarray, method: str, spread: float, prior_strength: float, level: float):
    if method == "odds":
        if not 0 <= spread < 1:
            raise ValueError("spread must be in [0, 1): odds are multiplied by 1 - spread and 1 + spread")
        with np.errstate(divide="ignore", invalid="ignore"):
            odds = theta / (1.0 - theta)
            lo, hi = odds * (1 - spread), odds * (1 + spread)
            t_lo, t_hi = lo / (1 + lo), hi / (1 + hi)
        t_lo = np.where(theta >= 1, 1.0, t_lo)
        t_hi = np.where(theta >= 1, 1.0, t_hi)
        return t_lo, t_hi
    if method == "dirichlet":
        from scipy.stats import beta

        a = np.maximum(prior_strength * theta, 1e-300)
        b = np.maximum(prior_strength * (1 - theta), 1e-300)
        t_lo = beta.ppf((1 - level) / 2, a, b)
        t_hi = beta.ppf((1 + level) / 2, a, b)
        t_lo = np.where(theta <= 0, 0.0, np.where(theta >= 1, 1.0, t_lo))
        t_hi = np.where(theta <= 0, 0.0, np.where(theta >= 1, 1.0, t_hi))
        return t_lo, t_hi
    raise ValueError("method must be 'odds' or 'dirichlet'")


def parameter_sensitivity(net, evidence: Evidence | None = None, target: str | None = None,
                          state: str | None = None, method: str = "odds", spread: float = 0.5,
                          prior_strength: float = 50.0, level: float = 0.9, top: int | None = None,
                          include_deterministic: bool = False) -> pd.DataFrame:
    """Tornado table: every CPT entry, ranked by how far it moves ``P(target=state | evidence)``.

    Each entry is varied over a plausible range (others in its row co-varied proportionally):
    ``method="odds"`` multiplies its odds by ``1 - spread`` and ``1 + spread``; ``"dirichlet"``
    takes the central ``level`` credible interval of its Beta marginal when the row is
    Dirichlet(``prior_strength`` * row). Only entries of ancestors of the evidence and the target
    are listed (all others leave the query exactly unchanged); entries equal to 0 or 1 are
    skipped unless ``include_deterministic`` (their plausible range is a point anyway).

    Returns one row per entry: variable, parent_config, state, theta, theta_low, theta_high,
    posterior, p_low, p_high, swing (``|p_high - p_low|``), derivative, and the coefficients
    a, b, c, d of the exact sensitivity function; sorted by swing. ``df.attrs`` records the query.
    """
    target = _target(net, target)
    frame, A, B, c, d, p_t = _all_coefficients(net, evidence, target, include_deterministic)
    h = _target_state(net, target, state, p_t)
    a, b = A[:, h], B[:, h]
    theta = frame.theta.to_numpy()
    t_lo, t_hi = _plausible_range(theta, method, spread, prior_strength, level)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_lo = (a * t_lo + b) / (c * t_lo + d)
        p_hi = (a * t_hi + b) / (c * t_hi + d)
        den0 = c * theta + d
        deriv = (a * d - b * c) / den0**2
    out = frame.assign(theta_low=t_lo, theta_high=t_hi, posterior=p_t[h], p_low=p_lo, p_high=p_hi,
                       swing=np.abs(p_hi - p_lo), derivative=deriv, a=a, b=b, c=c, d=d)
    out = out.sort_values(["swing", "variable"], ascending=[False, True], kind="mergesort").reset_index(drop=True)
    if top is not None:
        out = out.head(top)
    out.attrs.update(target=target, state=net.states[target][h], method=method, spread=spread,
                     prior_strength=prior_strength, level=level, posterior=float(p_t[h]))
    return out


def admissible_deviation(net, evidence: Evidence | None = None, target: str | None = None,
                         include_deterministic: bool = False, top: int | None = None) -> pd.DataFrame:
    """For the leading state of ``target``: the smallest change of each CPT entry that makes another
    state lead (SamIam-style), downwards and upwards within [0, 1].

    Columns: variable, parent_config, state, theta, leader, theta_down, leader_down, theta_up,
    leader_up, min_change (NaN when no value in [0, 1] changes the leader), and ``flip`` (a short
    text, "none within [0,1]" when the leader is robust to this entry). At ``theta_down`` /
    ``theta_up`` the leader ties with the new leader; beyond it the new leader is ahead.
    """
    target = _target(net, target)
    frame, A, B, c, d, p_t = _all_coefficients(net, evidence, target, include_deterministic)
    h = int(np.argmax(p_t))
    theta = frame.theta.to_numpy()
    names = net.states[target]
    # numerators are linear: state k overtakes h where (A_k - A_h) th = B_h - B_k
    dA = A - A[:, [h]]
    dB = B[:, [h]] - B
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = dB / dA
    cross[:, h] = np.nan
    th = theta[:, None]
    tol = 1e-12
    up = np.where((dA > tol) & (cross >= th - 1e-12) & (cross <= 1 + 1e-12), cross, np.inf)
    down = np.where((dA < -tol) & (cross <= th + 1e-12) & (cross >= -1e-12), cross, -np.inf)
    k_up, k_down = np.argmin(up, axis=1), np.argmax(down, axis=1)
    t_up = up[np.arange(len(up)), k_up]
    t_down = down[np.arange(len(down)), k_down]
    has_up, has_down = np.isfinite(t_up), np.isfinite(t_down)
    change = np.fmin(np.where(has_up, np.clip(t_up, 0, 1) - theta, np.nan),
                     np.where(has_down, theta - np.clip(t_down, 0, 1), np.nan))
    out = frame.assign(
        leader=names[h],
        theta_down=np.where(has_down, np.clip(t_down, 0, 1), np.nan),
        leader_down=[names[k] if ok else "" for k, ok in zip(k_down, has_down)],
        theta_up=np.where(has_up, np.clip(t_up, 0, 1), np.nan),
        leader_up=[names[k] if ok else "" for k, ok in zip(k_up, has_up)],
        min_change=change,
    )
    flips = []
    for r in out.itertuples():
        parts = []
        if r.leader_down:
            parts.append(f"<= {r.theta_down:.4g} -> {r.leader_down}")
        if r.leader_up:
            parts.append(f">= {r.theta_up:.4g} -> {r.leader_up}")
        flips.append("; ".join(parts) if parts else "none within [0,1]")
    out["flip"] = flips
    out = out.sort_values(["min_change", "variable"], na_position="last", kind="mergesort").reset_index(drop=True)
    if top is not None:
        out = out.head(top)
    out.attrs.update(target=target, leader=names[h], posterior=float(p_t[h]))
    return out


from .whatif import evidence_sensitivity, odds_scaling  # noqa: E402  (re-exported)
