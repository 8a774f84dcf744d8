"""Evidence: checking what the user says against the network, and turning it into likelihoods.

Evidence maps a variable to either

* a state name (hard evidence): ``{"babinski": "present"}``;
* a likelihood over its states (soft or virtual evidence), as a mapping state -> weight
  (unlisted states weigh 0) or a sequence in state order:
  ``{"reflexes_legs": {"hyper": 0.8, "normal": 0.2}}`` reads "probably brisk";
* ``None``, ``""`` or NaN: not observed (ignored).

Everything downstream works on likelihood vectors: hard evidence is a one-hot vector, and a
variable that is not observed is a vector of ones.

    >>> states = {"babinski": ("present", "absent")}
    >>> to_likelihoods({"babinski": "present"}, states)
    {'babinski': array([1., 0.])}
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import EvidenceError, did_you_mean, valid_list

Evidence = Mapping[str, Any]


def is_missing(value: Any) -> bool:
    """True for the values that mean "not observed": None, "", NaN/NA."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    if isinstance(value, float):
        return math.isnan(value)
    try:
        return bool(pd.isna(value)) if np.ndim(value) == 0 else False
    except (TypeError, ValueError):
        return False


def check_variable(name: Any, states: Mapping[str, Sequence[str]]) -> str:
    """Return ``name`` if the network has it, else raise an :class:`EvidenceError` with suggestions."""
    if not isinstance(name, str):
        raise EvidenceError(f"variable names must be strings, got {name!r} ({type(name).__name__})")
    if name not in states:
        raise EvidenceError(f"unknown variable {name!r}.{did_you_mean(name, states)}")
    return name


def state_index(name: str, value: Any, states: Mapping[str, Sequence[str]]) -> int:
    """Index of state ``value`` of variable ``name``, or a clear error naming the valid states."""
    valid = list(states[name])
    text = str(value).strip() if isinstance(value, (str, np.str_)) else value
    if isinstance(text, str) and text in valid:
        return valid.index(text)
    raise EvidenceError(
        f"{name}={value!r}: not a state of {name!r} (valid: {valid_list(valid)})."
        + did_you_mean(str(value), valid)
    )


def likelihood_vector(name: str, value: Any, states: Mapping[str, Sequence[str]]) -> np.ndarray | None:
    """The likelihood vector for one piece of evidence, or None when it means "not observed"."""
    valid = list(states[name])
    if isinstance(value, (str, np.str_)):
        if is_missing(value):
            return None
        vec = np.zeros(len(valid))
        vec[state_index(name, value, states)] = 1.0
        return vec
    if isinstance(value, Mapping) or isinstance(value, pd.Series):
        items = dict(value.items())
        vec = np.zeros(len(valid))
        for s, w in items.items():
            vec[state_index(name, s, states)] = _weight(name, s, w)
    elif isinstance(value, (list, tuple, np.ndarray)):
        arr = np.asarray(value, dtype=object).ravel()
        if len(arr) != len(valid):
            raise EvidenceError(
                f"{name}: a likelihood vector needs {len(valid)} numbers, one per state "
                f"({valid_list(valid)}); got {len(arr)}"
            )
        vec = np.array([_weight(name, s, w) for s, w in zip(valid, arr)])
    elif is_missing(value):
        return None
    else:
        raise EvidenceError(
            f"{name}={value!r}: evidence must be a state name, a likelihood (mapping state -> weight, or "
            f"a list of {len(valid)} weights), or None; got {type(value).__name__}"
        )
    if not vec.any():
        raise EvidenceError(f"{name}: the likelihood is zero for every state; at least one weight must be > 0")
    return vec


def _weight(name: str, state: Any, w: Any) -> float:
    try:
        w = float(w)
    except (TypeError, ValueError):
        raise EvidenceError(f"{name}: the weight of {state!r} is {w!r}, not a number") from None
    if not math.isfinite(w) or w < 0:
        raise EvidenceError(f"{name}: the weight of {state!r} is {w}; weights must be finite and >= 0")
    return w


def to_likelihoods(evidence: Evidence | None, states: Mapping[str, Sequence[str]]) -> dict[str, np.ndarray]:
    """Check ``evidence`` and return ``{variable: likelihood vector}`` for the observed variables."""
    if evidence is None:
        return {}
    if not isinstance(evidence, Mapping):
        raise EvidenceError(
            f"evidence must be a mapping variable -> state (or likelihood), got {type(evidence).__name__}"
        )
    out = {}
    for name, value in evidence.items():
        check_variable(name, states)
        vec = likelihood_vector(name, value, states)
        if vec is not None:
            out[name] = vec
    return out


def hard_evidence(evidence: Evidence | None, states: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """The hard (single-state) part of ``evidence``, checked: ``{variable: state}``."""
    out = {}
    for name, vec in to_likelihoods(evidence, states).items():
        if np.count_nonzero(vec) == 1 and vec.max() > 0:
            out[name] = states[name][int(np.argmax(vec))]
    return out


def cases_to_likelihoods(
    cases: pd.DataFrame, states: Mapping[str, Sequence[str]], ignore: Sequence[str] = ("case_id",),
    first_row: int = 1,
) -> dict[str, np.ndarray]:
    """Per-variable ``(N, card)`` likelihood arrays for a table of cases (blank/NaN = unobserved).

    Cells hold state names (or, for soft evidence, a mapping state -> weight). Every problem is
    reported at once with its row (counting from ``first_row``) and column; nothing is
    silently dropped.
    """
    if not isinstance(cases, pd.DataFrame):
        raise EvidenceError(f"cases must be a pandas DataFrame, got {type(cases).__name__}")
    problems: list[str] = []
    columns = [c for c in cases.columns if c not in ignore]
    for c in columns:
        if c not in states:
            problems.append(f"column {c!r}: not a variable of the network.{did_you_mean(str(c), states)}")
    if problems:
        raise EvidenceError(f"{len(problems)} problem(s) in the cases:\n  - " + "\n  - ".join(problems))
    n = len(cases)
    out: dict[str, np.ndarray] = {}
    for c in columns:
        valid = list(states[c])
        index = {s: i for i, s in enumerate(valid)}
        arr = np.ones((n, len(valid)))
        col = cases[c].to_numpy(dtype=object)
        # Fast path: cells that are exactly a state name become one-hot rows in one go; the
        # rest (blank or missing cells, padded names, soft evidence, mistakes) go one by one.
        rows = range(n)
        try:
            codes = np.fromiter((index.get(v, -1) for v in col), dtype=np.intp, count=n)
        except TypeError:  # unhashable cells (soft evidence as a mapping)
            codes = None
        observed = False
        if codes is not None:
            hit = np.flatnonzero(codes >= 0)
            if hit.size:
                observed = True
                arr[hit] = 0.0
                arr[hit, codes[hit]] = 1.0
            rows = np.flatnonzero((codes < 0) & ~pd.isna(col)).tolist()
        for r in rows:
            value = col[r]
            if is_missing(value):
                continue
            observed = True
            key = value.strip() if isinstance(value, str) else value
            if isinstance(key, str) and key in index:
                arr[r] = 0.0
                arr[r, index[key]] = 1.0
                continue
            try:
                vec = likelihood_vector(c, value, states)
            except EvidenceError as exc:
                problems.append(f"row {r + first_row} ({_row_label(cases, r)}), column {c!r}: {exc}")
                if len(problems) >= 50:
                    break
                continue
            if vec is not None:
                arr[r] = vec
        if observed:
            out[c] = arr
    if problems:
        shown = problems[:50]
        raise EvidenceError(
            f"{len(problems)}{'+' if len(problems) >= 50 else ''} problem(s) in the cases:\n  - " + "\n  - ".join(shown)
        )
    return out


def _row_label(cases: pd.DataFrame, r: int) -> str:
    if "case_id" in cases.columns:
        return f"case_id {cases['case_id'].iloc[r]!r}"
    return f"index {cases.index[r]!r}"
