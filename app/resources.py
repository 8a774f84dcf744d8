"""Shared, read-only resources (the network, the vignettes) and per-session memoised queries.

``st.cache_resource`` objects are shared by every session, so they are never mutated: the app
only calls the network's query methods. Each user's evidence lives in ``st.session_state``.
"""
from __future__ import annotations

import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Mapping, Sequence

import streamlit as st

from model import load_network
from model.knowledge import DEFAULT_KNOWLEDGE

ENV_NETWORK = "LESIONBN_NETWORK"
ENV_VIGNETTES = "LESIONBN_VIGNETTES"
DEFAULT_KEY = "default"
EXAMPLES = ("asia", "alarm", "child", "insurance")
_CACHE_KEY = "_query_cache"
_CACHE_SIZE = 128


def example_path(name: str) -> str | None:
    """Path of a network bundled with pgmpy (read locally, never downloaded), or None."""
    try:
        import pgmpy
    except ImportError:  # pragma: no cover - pgmpy is a dependency
        return None
    path = Path(pgmpy.__file__).parent / "utils" / "example_models" / f"{name}.bif.gz"
    return str(path) if path.exists() else None


def network_choices() -> dict[str, str]:
    """Label -> network path (or ``"default"``), first entry preselected.

    ``LESIONBN_NETWORK`` (a knowledge, BIF or XMLBIF file) comes first when set, then the default
    motor-lesion network, then a few generic networks bundled with pgmpy.
    """
    choices: dict[str, str] = {}
    env = os.environ.get(ENV_NETWORK, "").strip()
    if env:
        choices[f"{Path(env).name} (from {ENV_NETWORK})"] = env
    if DEFAULT_KNOWLEDGE.exists():
        choices["motor_lesion (default)"] = DEFAULT_KEY
    for name in EXAMPLES:
        path = example_path(name)
        if path:
            choices[f"{name} (generic example from pgmpy)"] = path
    return choices


@st.cache_resource(show_spinner=False, max_entries=4)
def get_network(key: str):
    """Load and compile a network once per process (shared by all sessions: never mutate it)."""
    net = load_network(None if key == DEFAULT_KEY else key)
    _ = net.engine  # compile now, inside the spinner, not on the first click
    net.posterior({})
    return net


@st.cache_resource(show_spinner=False)
def get_vignettes(path: str | None = None) -> tuple:
    """All vignettes (an empty tuple when there are none or the folder is missing)."""
    from model.errors import ModelFileError
    from model.vignettes import load_vignettes

    path = path or os.environ.get(ENV_VIGNETTES) or None
    try:
        return tuple(load_vignettes(path))
    except (ModelFileError, OSError):
        return ()


def _memo(session, key, compute):
    cache = session.get(_CACHE_KEY)
    if cache is None:
        cache = OrderedDict()
        session[_CACHE_KEY] = cache
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = compute()
    cache[key] = value
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return value


def _ekey(evidence: Mapping[str, str]) -> tuple:
    return tuple(sorted((str(k), str(v)) for k, v in evidence.items()))


def posterior(net, evidence: Mapping[str, str], targets: Sequence[str]) -> dict:
    """``net.posterior`` memoised per session (the previous posterior is reused for deltas)."""
    key = ("posterior", id(net), _ekey(evidence), tuple(targets))
    return _memo(st.session_state, key, lambda: net.posterior(dict(evidence), targets=list(targets)))


def intervals(net, evidence: Mapping[str, str], targets: Sequence[str], n_samples: int = 100, level: float = 0.9):
    """``net.posterior_intervals`` memoised per session: credible intervals of the posteriors
    under Dirichlet uncertainty of the CPTs (seeded, so a rerun shows the same interval)."""
    key = ("intervals", id(net), _ekey(evidence), tuple(targets), n_samples, level)
    return _memo(st.session_state, key, lambda: net.posterior_intervals(
        dict(evidence), targets=list(targets), n_samples=n_samples, level=level, seed=0))


def is_possible(net, evidence: Mapping[str, str]) -> bool:
    """Whether ``evidence`` has non-zero probability under ``net``."""
    if not evidence:
        return True
    key = ("possible", id(net), _ekey(evidence))
    return _memo(st.session_state, key, lambda: net.log_probability_of_evidence(dict(evidence)) > float("-inf"))


def memo(name: str, net, evidence: Mapping[str, str], extra: tuple, compute):
    """Memoise any per-evidence model call for this session."""
    return _memo(st.session_state, (name, id(net), _ekey(evidence), extra), compute)


class Timer:
    """Records how long the script run took (shown in the footer, used by the timing test)."""

    def __init__(self):
        self.start = self.last = time.perf_counter()

    def lap(self) -> float:
        """Milliseconds since the previous lap (or the start)."""
        now = time.perf_counter()
        out, self.last = (now - self.last) * 1000.0, now
        return out

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.start) * 1000.0
