"""Per-user case state: evidence, the last change, saved cases, and the query-string round trip.

Everything here is pure Python on plain mappings, so it is unit-testable without Streamlit: the
app passes ``st.session_state`` (or any dict) as ``session`` and ``st.query_params`` as ``params``.
No probability is computed here; the one question asked of the network (is this evidence
possible?) is passed in as a callable.

    >>> states = {"babinski": ["present", "absent"], "lesion_type": ["UMN", "LMN"]}
    >>> ev, warns = evidence_from_query({"babinski": "present"}, states, ["babinski"])
    >>> ev, warns
    ({'babinski': 'present'}, [])
    >>> evidence_to_query(ev)
    {'babinski': 'present'}
"""
from __future__ import annotations

from typing import Callable, Mapping, MutableMapping, Sequence

from model.errors import did_you_mean

Evidence = dict[str, str]

#: session keys used by the app (all values are plain, picklable Python)
EVIDENCE = "evidence"
PREVIOUS = "previous_evidence"
LAST_CHANGE = "last_change"
SAVED = "saved_cases"
NOTICES = "notices"
WIDGET_PREFIX = "finding_"

#: at most this many query parameters are read (a pasted URL is untrusted input)
MAX_PARAMS = 500


def widget_key(variable: str) -> str:
    """Session key of the input widget of ``variable``."""
    return WIDGET_PREFIX + variable


def with_finding(evidence: Mapping[str, str], variable: str, state: str | None) -> Evidence:
    """A copy of ``evidence`` with ``variable`` set to ``state`` (removed when ``state`` is None)."""
    out = dict(evidence)
    if state is None:
        out.pop(variable, None)
    else:
        out[variable] = state
    return out


def describe_change(before: Mapping[str, str], after: Mapping[str, str]) -> str:
    """A short human description of what changed between two evidence sets.

    >>> describe_change({}, {"babinski": "present"})
    'babinski = present'
    >>> describe_change({"babinski": "present"}, {})
    'babinski cleared'
    """
    parts = []
    for v in sorted(set(before) | set(after), key=str):
        a, b = before.get(v), after.get(v)
        if a == b:
            continue
        parts.append(f"{v} cleared" if b is None else f"{v} = {b}")
    if not parts:
        return "no change"
    if len(parts) > 3:
        return f"{len(parts)} findings changed"
    return ", ".join(parts)


def evidence_to_query(evidence: Mapping[str, str]) -> dict[str, str]:
    """Query parameters for ``evidence``: one ``variable=state`` pair each, sorted for stable URLs."""
    return {str(v): str(evidence[v]) for v in sorted(evidence, key=str)}


def validate_evidence(
    evidence: Mapping[str, object],
    states: Mapping[str, Sequence[str]],
    observable: Sequence[str],
    origin: str = "the link",
) -> tuple[Evidence, list[str]]:
    """Keep the valid ``variable -> state`` pairs of untrusted evidence; explain the rest.

    Returns the valid evidence and a list of friendly warnings (one per dropped entry).
    """
    observable_set = set(observable)
    out: Evidence = {}
    warnings: list[str] = []
    for raw_var, raw_state in list(evidence.items())[:MAX_PARAMS]:
        var = str(raw_var)
        if isinstance(raw_state, (list, tuple)):
            values = [str(s) for s in raw_state]
            if len(set(values)) > 1:
                warnings.append(f"{var!r} is given more than once in {origin}; the last value ({values[-1]!r}) is used.")
            raw_state = values[-1] if values else ""
        state = str(raw_state)
        if var not in states:
            warnings.append(f"{origin.capitalize()} names an unknown finding {var!r}; it was ignored.{did_you_mean(var, observable)}")
            continue
        if var not in observable_set:
            warnings.append(f"{var!r} is a diagnostic target, not a finding you can enter; it was ignored.")
            continue
        if state not in states[var]:
            valid = ", ".join(map(str, states[var]))
            warnings.append(
                f"{origin.capitalize()} gives {var!r} the unknown value {state!r}; it was ignored "
                f"(valid: {valid}).{did_you_mean(state, states[var])}"
            )
            continue
        out[var] = state
    if len(evidence) > MAX_PARAMS:
        warnings.append(f"{origin.capitalize()} has more than {MAX_PARAMS} entries; the rest were ignored.")
    return out, warnings


def evidence_from_query(
    params: Mapping[str, object],
    states: Mapping[str, Sequence[str]],
    observable: Sequence[str],
) -> tuple[Evidence, list[str]]:
    """Evidence from query parameters (``variable=state``), with warnings for invalid entries."""
    return validate_evidence(params, states, observable, origin="the link")


def drop_impossible(
    evidence: Mapping[str, str],
    is_possible: Callable[[Mapping[str, str]], bool],
) -> tuple[Evidence, list[str]]:
    """Add findings one by one, skipping any that would make the evidence impossible."""
    kept: Evidence = {}
    warnings: list[str] = []
    for var, state in evidence.items():
        trial = with_finding(kept, var, state)
        if is_possible(trial):
            kept = trial
        else:
            warnings.append(
                f"{var} = {state} is impossible together with the other findings under this network; it was not applied."
            )
    return kept, warnings


# --------------------------------------------------------------------------- session helpers

def init_session(session: MutableMapping, evidence: Mapping[str, str] | None = None) -> None:
    """Create the app's keys in ``session`` if missing (no-op when they exist)."""
    session.setdefault(EVIDENCE, dict(evidence or {}))
    session.setdefault(PREVIOUS, None)
    session.setdefault(LAST_CHANGE, "")
    session.setdefault(SAVED, {})
    session.setdefault(NOTICES, [])


def set_evidence(session: MutableMapping, new: Mapping[str, str], label: str | None = None) -> None:
    """Replace the evidence, remembering the previous one (for deltas) and syncing the widgets.

    Call it from a widget callback or before the widgets are drawn (Streamlit forbids changing a
    widget's value after it was drawn in the same run).
    """
    old = dict(session.get(EVIDENCE) or {})
    new = dict(new)
    if new == old:
        return
    session[PREVIOUS] = old
    session[EVIDENCE] = new
    session[LAST_CHANGE] = label or describe_change(old, new)
    session[NOTICES] = []  # notices are about the case as it was
    sync_widgets(session, new, set(old) | set(new))


def sync_widgets(session: MutableMapping, evidence: Mapping[str, str], variables) -> None:
    """Make the finding widgets of ``variables`` show ``evidence``."""
    for v in variables:
        session[widget_key(v)] = evidence.get(v)


def reset(session: MutableMapping) -> None:
    """Clear all findings (saved cases are kept)."""
    set_evidence(session, {}, label="case reset")
    session[PREVIOUS] = None
    session[LAST_CHANGE] = ""


def save_case(session: MutableMapping, name: str) -> str:
    """Save the current evidence under ``name`` (made unique); return the name used."""
    saved = dict(session.get(SAVED) or {})
    base = (name or "").strip() or f"case {len(saved) + 1}"
    final, i = base, 2
    while final in saved:
        final, i = f"{base} ({i})", i + 1
    saved[final] = dict(session.get(EVIDENCE) or {})
    session[SAVED] = saved
    return final


def add_notice(session: MutableMapping, message: str) -> None:
    """Add a message shown until the evidence next changes."""
    session[NOTICES] = list(session.get(NOTICES) or []) + [message]


def notices(session: MutableMapping) -> list[str]:
    return list(session.get(NOTICES) or [])
