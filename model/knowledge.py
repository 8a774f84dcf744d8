"""The knowledge file: a declarative, clinician-readable description of a network.

A knowledge file is YAML (see ``docs/knowledge-format.md``). It lists sources,
variables (states, a one-line description, parents, role) and each variable's
conditional probability table written as *rules*: a rule gives the
probabilities of the variable's states for every parent configuration that
matches its ``when`` clause, and later rules override earlier ones. So a large
table is a default row plus a few overrides, and every rule carries its
provenance (a key of the ``sources`` table, or the words ``expert estimate``).

The loader checks everything and reports *all* problems at once, each naming
the variable and rule::

    >>> kb = read_knowledge()                      # the default network
    >>> kb.variables["babinski"].states
    ('present', 'absent')

``compile_table`` turns the rules into full numpy tables; ``to_pgmpy`` builds
the pgmpy ``DiscreteBayesianNetwork``. Writing a knowledge file back (used for
fitted networks) is in :mod:`model.knowledge_write`; the graph helpers
(``find_cycle``, ``topological_order``) are in :mod:`model.graph`.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml

from .errors import ModelFileError, did_you_mean, valid_list
from .graph import find_cycle, topological_order

#: rows of a CPT must sum to 1 within this absolute tolerance
SUM_TOLERANCE = 1e-6
#: the provenance words for a number without a citation
EXPERT = "expert estimate"
ROLES = ("latent", "helper", "context", "finding")
FORMAT = "lesionbn-knowledge/1"

DEFAULT_KNOWLEDGE = Path(__file__).resolve().parent.parent / "data" / "motor_lesion.yaml"


class _Loader(yaml.SafeLoader):
    """Safe YAML loader in which yes/no/on/off stay strings (state names, not booleans)."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class Variable:
    """One variable of the network."""

    name: str
    states: tuple[str, ...]
    description: str = ""
    role: str = "finding"
    parents: tuple[str, ...] = ()
    state_descriptions: Mapping[str, str] = field(default_factory=dict)

    @property
    def card(self) -> int:
        return len(self.states)


@dataclass(frozen=True)
class Rule:
    """One CPT rule: the states' probabilities for the parent configurations it matches."""

    when: Mapping[str, tuple[str, ...]]
    probabilities: Mapping[str, float]
    source: tuple[str, ...]
    note: str = ""

    def matches(self, config: Mapping[str, str]) -> bool:
        return all(config[p] in allowed for p, allowed in self.when.items())


@dataclass(frozen=True)
class TestGroup:
    """An orderable test: the variables it reveals at once, with its cost."""

    name: str
    label: str
    variables: tuple[str, ...]
    cost: float = 1.0
    invasiveness: str = "none"
    time_to_result: str = ""
    source: tuple[str, ...] = (EXPERT,)
    description: str = ""


@dataclass
class Knowledge:
    """A parsed, validated knowledge file (or a network imported from BIF/XMLBIF)."""

    name: str
    variables: dict[str, Variable]
    rules: dict[str, list[Rule]]
    sources: dict[str, str] = field(default_factory=dict)
    tests: list[TestGroup] = field(default_factory=list)
    groups: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    version: str = ""
    description: str = ""
    path: str | None = None

    @property
    def order(self) -> list[str]:
        """Variables in a topological order (parents first), stable with respect to the file."""
        return topological_order({v: var.parents for v, var in self.variables.items()})

    def tables(self) -> dict[str, np.ndarray]:
        """Full CPTs: ``tables[v]`` has shape ``(card(v), *cards(parents))``."""
        return {v: compile_table(self, v)[0] for v in self.variables}

    def row_sources(self, name: str) -> list[tuple[str, ...]]:
        """Provenance of each parent configuration of ``name`` (C order over parents)."""
        return compile_table(self, name)[1]


# --------------------------------------------------------------------------- reading

def read_knowledge(path: str | Path | None = None) -> Knowledge:
    """Read and validate a knowledge file; the default network when ``path`` is None.

    Raises :class:`ModelFileError` listing every problem (variable, rule number, what is wrong).
    """
    path = Path(path) if path is not None else DEFAULT_KNOWLEDGE
    if not path.exists():
        raise ModelFileError(f"knowledge file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise ModelFileError(f"{path}: the file is empty")
    try:
        doc = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ModelFileError(f"{path}: not valid YAML: {exc}") from None
    return parse_knowledge(doc, origin=str(path))


def parse_knowledge(doc: Any, origin: str = "<knowledge>") -> Knowledge:
    """Validate a knowledge document (the parsed YAML mapping) and build a :class:`Knowledge`."""
    problems: list[str] = []
    if not isinstance(doc, Mapping):
        raise ModelFileError(f"{origin}: the top level must be a mapping with 'variables', 'sources', ...")
    fmt = doc.get("format", FORMAT)
    if fmt != FORMAT:
        problems.append(f"format {fmt!r} is not supported (expected {FORMAT!r})")
    sources = {str(k): str(v) for k, v in (doc.get("sources") or {}).items()}
    raw_vars = doc.get("variables")
    if not isinstance(raw_vars, Mapping) or not raw_vars:
        raise ModelFileError(f"{origin}: 'variables' must be a non-empty mapping of variable name -> definition")

    variables: dict[str, Variable] = {}
    raw_rules: dict[str, Any] = {}
    for name, spec in raw_vars.items():
        name = str(name)
        where = f"variable {name!r}"
        if not isinstance(spec, Mapping):
            problems.append(f"{where}: definition must be a mapping (states, parents, cpt, ...)")
            continue
        states = spec.get("states")
        if not isinstance(states, list) or len(states) < 2:
            problems.append(f"{where}: 'states' must be a list of at least two state names")
            continue
        states = tuple(str(s) for s in states)
        dupes = sorted({s for s in states if states.count(s) > 1})
        if dupes:
            problems.append(f"{where}: duplicate states {dupes}")
        role = str(spec.get("role", "finding"))
        if role not in ROLES:
            problems.append(f"{where}: role {role!r} is not one of {', '.join(ROLES)}")
        parents = spec.get("parents") or []
        if not isinstance(parents, list):
            problems.append(f"{where}: 'parents' must be a list")
            parents = []
        sdesc = spec.get("state_descriptions") or {}
        for s in sdesc:
            if str(s) not in states:
                problems.append(f"{where}: state_descriptions names undeclared state {s!r}")
        variables[name] = Variable(
            name=name,
            states=states,
            description=str(spec.get("description", "")),
            role=role,
            parents=tuple(str(p) for p in parents),
            state_descriptions={str(k): str(v) for k, v in sdesc.items()},
        )
        if "cpt" not in spec:
            problems.append(f"{where}: no 'cpt' (a list of rules with p and source)")
        raw_rules[name] = spec.get("cpt")

    for name, var in variables.items():
        for p in var.parents:
            if p == name:
                problems.append(f"variable {name!r}: lists itself as a parent")
            elif p not in variables:
                problems.append(
                    f"variable {name!r}: unknown parent {p!r}.{did_you_mean(p, variables)}"
                )
    if not problems:
        cycle = find_cycle({v: var.parents for v, var in variables.items()})
        if cycle:
            problems.append("the parents form a cycle: " + " -> ".join(cycle))

    rules: dict[str, list[Rule]] = {}
    if not problems:
        for name, var in variables.items():
            rules[name] = _parse_rules(name, raw_rules.get(name), variables, sources, problems)

    kb = Knowledge(
        name=str(doc.get("name", Path(origin).stem)),
        variables=variables,
        rules=rules,
        sources=sources,
        version=str(doc.get("version", "")),
        description=str(doc.get("description", "")).strip(),
        path=origin,
    )
    if not problems:
        kb.tests = _parse_tests(doc.get("tests") or [], variables, sources, problems)
        kb.groups = _parse_groups(doc.get("groups") or [], variables, problems)
        for name in variables:
            try:
                compile_table(kb, name)
            except ModelFileError as exc:
                problems.append(str(exc))
    if problems:
        raise ModelFileError(
            f"{origin}: {len(problems)} problem(s) in the knowledge file:\n  - " + "\n  - ".join(problems)
        )
    return kb


def _parse_source(value: Any, where: str, sources: Mapping[str, str], problems: list[str]) -> tuple[str, ...]:
    if value is None or value == "" or value == []:
        problems.append(f"{where}: missing provenance ('source': a key of the sources table or '{EXPERT}')")
        return ()
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        item = str(item).strip()
        if item != EXPERT and item not in sources:
            problems.append(
                f"{where}: source {item!r} is neither a key of the sources table nor '{EXPERT}'."
                + did_you_mean(item, list(sources) + [EXPERT])
            )
        out.append(item)
    return tuple(out)


def _parse_rules(name, raw, variables, sources, problems) -> list[Rule]:
    var = variables[name]
    if not isinstance(raw, list) or not raw:
        problems.append(f"variable {name!r}: 'cpt' must be a non-empty list of rules")
        return []
    rules = []
    for i, item in enumerate(raw, start=1):
        where = f"variable {name!r}, cpt rule {i}"
        if not isinstance(item, Mapping):
            problems.append(f"{where}: a rule must be a mapping with 'p' and 'source'")
            continue
        unknown_keys = set(item) - {"when", "p", "source", "note"}
        if unknown_keys:
            problems.append(f"{where}: unknown key(s) {sorted(unknown_keys)} (valid: when, p, source, note)")
        when_raw = item.get("when") or {}
        if not isinstance(when_raw, Mapping):
            problems.append(f"{where}: 'when' must map parent -> state (or list of states)")
            when_raw = {}
        when: dict[str, tuple[str, ...]] = {}
        for parent, allowed in when_raw.items():
            parent = str(parent)
            if parent not in var.parents:
                problems.append(
                    f"{where}: 'when' names {parent!r}, which is not a parent of {name!r} "
                    f"(parents: {valid_list(var.parents) or 'none'})"
                )
                continue
            allowed = tuple(str(a) for a in (allowed if isinstance(allowed, list) else [allowed]))
            pstates = variables[parent].states
            for a in allowed:
                if a not in pstates:
                    problems.append(
                        f"{where}: {parent}={a!r} is not a declared state of {parent!r} "
                        f"(valid: {valid_list(pstates)}).{did_you_mean(a, pstates)}"
                    )
            when[parent] = allowed
        probs = _parse_probabilities(item.get("p"), var, where, problems)
        source = _parse_source(item.get("source"), where, sources, problems)
        rules.append(Rule(when=when, probabilities=probs, source=source, note=str(item.get("note", ""))))
    return rules


def _parse_probabilities(raw, var: Variable, where: str, problems: list[str]) -> dict[str, float]:
    """``p`` is a mapping state -> probability, or a list in state order.

    In a mapping, the key ``others`` spreads its mass evenly over the states not listed.
    """
    if isinstance(raw, list):
        if len(raw) != var.card:
            problems.append(f"{where}: 'p' lists {len(raw)} numbers but {var.name!r} has {var.card} states")
            return {}
        raw = dict(zip(var.states, raw))
    if not isinstance(raw, Mapping) or not raw:
        problems.append(f"{where}: 'p' must map state -> probability")
        return {}
    probs: dict[str, float] = {}
    others = None
    for state, value in raw.items():
        state = str(state)
        try:
            value = float(value)
        except (TypeError, ValueError):
            problems.append(f"{where}: probability of {state!r} is {value!r}, not a number")
            return {}
        if not math.isfinite(value) or value < 0 or value > 1:
            problems.append(f"{where}: probability of {state!r} is {value}, outside [0, 1]")
            return {}
        if state == "others" and "others" not in var.states:
            others = value
            continue
        if state not in var.states:
            problems.append(
                f"{where}: {state!r} is not a declared state of {var.name!r} "
                f"(valid: {valid_list(var.states)}).{did_you_mean(state, var.states)}"
            )
            return {}
        probs[state] = value
    rest = [s for s in var.states if s not in probs]
    if others is not None:
        if not rest:
            problems.append(f"{where}: 'others' given but every state is already listed")
            return {}
        for s in rest:
            probs[s] = others / len(rest)
    elif rest:
        problems.append(
            f"{where}: no probability for {', '.join(map(repr, rest))}; list every state or add 'others: <mass>'"
        )
        return {}
    total = sum(probs.values())
    if abs(total - 1.0) > SUM_TOLERANCE:
        problems.append(f"{where}: probabilities sum to {total:.6g}, not 1 (tolerance {SUM_TOLERANCE:g})")
        return {}
    return probs


def _parse_tests(raw, variables, sources, problems) -> list[TestGroup]:
    tests = []
    seen: set[str] = set()
    if not isinstance(raw, list):
        problems.append("'tests' must be a list of test groups")
        return tests
    for i, item in enumerate(raw, start=1):
        where = f"test group {i}"
        if not isinstance(item, Mapping) or "name" not in item or "variables" not in item:
            problems.append(f"{where}: needs at least 'name' and 'variables'")
            continue
        name = str(item["name"])
        where = f"test group {name!r}"
        if name in seen:
            problems.append(f"{where}: duplicate name")
        seen.add(name)
        tvars = tuple(str(v) for v in item["variables"])
        for v in tvars:
            if v not in variables:
                problems.append(f"{where}: unknown variable {v!r}.{did_you_mean(v, variables)}")
        try:
            cost = float(item.get("cost", 1.0))
            if cost < 0:
                raise ValueError
        except (TypeError, ValueError):
            problems.append(f"{where}: cost must be a non-negative number, got {item.get('cost')!r}")
            cost = 1.0
        tests.append(
            TestGroup(
                name=name,
                label=str(item.get("label", name)),
                variables=tvars,
                cost=cost,
                invasiveness=str(item.get("invasiveness", "none")),
                time_to_result=str(item.get("time_to_result", "")),
                source=_parse_source(item.get("source"), where, sources, problems),
                description=str(item.get("description", "")),
            )
        )
    return tests


def _parse_groups(raw, variables, problems) -> list[tuple[str, tuple[str, ...]]]:
    groups = []
    for i, item in enumerate(raw or [], start=1):
        if not isinstance(item, Mapping) or "name" not in item or "variables" not in item:
            problems.append(f"display group {i}: needs 'name' and 'variables'")
            continue
        gvars = tuple(str(v) for v in item["variables"])
        for v in gvars:
            if v not in variables:
                problems.append(f"display group {item['name']!r}: unknown variable {v!r}.{did_you_mean(v, variables)}")
        groups.append((str(item["name"]), gvars))
    return groups


# --------------------------------------------------------------------------- compiling

def parent_configurations(kb: Knowledge, name: str) -> list[dict[str, str]]:
    """All parent configurations of ``name`` in C order (the last parent varies fastest)."""
    parents = kb.variables[name].parents
    return [
        dict(zip(parents, combo))
        for combo in itertools.product(*(kb.variables[p].states for p in parents))
    ]


def compile_table(kb: Knowledge, name: str) -> tuple[np.ndarray, list[tuple[str, ...]]]:
    """Apply ``name``'s rules in order; return the full table and each column's provenance.

    Raises :class:`ModelFileError` when a parent configuration is matched by no rule.
    """
    var = kb.variables[name]
    configs = parent_configurations(kb, name)
    table = np.empty((var.card, len(configs)))
    provenance: list[tuple[str, ...]] = []
    uncovered = []
    for j, config in enumerate(configs):
        rule = None
        for r in kb.rules[name]:
            if r.matches(config):
                rule = r
        if rule is None:
            uncovered.append(config)
            provenance.append(())
            continue
        table[:, j] = [rule.probabilities[s] for s in var.states]
        provenance.append(rule.source)
    if uncovered:
        shown = "; ".join(", ".join(f"{k}={v}" for k, v in c.items()) for c in uncovered[:3])
        more = f" (and {len(uncovered) - 3} more)" if len(uncovered) > 3 else ""
        raise ModelFileError(
            f"variable {name!r}: no cpt rule covers the parent configuration {shown}{more}; "
            "add a default rule (without 'when') first"
        )
    shape = (var.card, *(kb.variables[p].card for p in var.parents))
    return table.reshape(shape), provenance


def to_pgmpy(kb: Knowledge):
    """Build the pgmpy ``DiscreteBayesianNetwork`` (checked with ``check_model``)."""
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    model = DiscreteBayesianNetwork()
    model.add_nodes_from(kb.order)
    model.add_edges_from((p, v) for v in kb.order for p in kb.variables[v].parents)
    for v in kb.order:
        var = kb.variables[v]
        table, _ = compile_table(kb, v)
        cpd = TabularCPD(
            variable=v,
            variable_card=var.card,
            values=table.reshape(var.card, -1),
            evidence=list(var.parents) or None,
            evidence_card=[kb.variables[p].card for p in var.parents] or None,
            state_names={v: list(var.states), **{p: list(kb.variables[p].states) for p in var.parents}},
        )
        model.add_cpds(cpd)
    model.check_model()
    return model


def from_tables(
    name: str,
    states: Mapping[str, Sequence[str]],
    parents: Mapping[str, Sequence[str]],
    tables: Mapping[str, np.ndarray],
    source: str = EXPERT,
    sources: Mapping[str, str] | None = None,
    roles: Mapping[str, str] | None = None,
    descriptions: Mapping[str, str] | None = None,
    path: str | None = None,
) -> Knowledge:
    """Build a :class:`Knowledge` with one explicit rule per parent configuration.

    Used for networks read from BIF/XMLBIF and for fitted networks.
    """
    roles = roles or {}
    descriptions = descriptions or {}
    variables = {
        v: Variable(
            name=v,
            states=tuple(states[v]),
            parents=tuple(parents[v]),
            role=roles.get(v, "finding"),
            description=descriptions.get(v, ""),
        )
        for v in states
    }
    rules = {}
    for v, var in variables.items():
        table = np.asarray(tables[v], dtype=float).reshape(var.card, -1)
        combos = list(itertools.product(*(variables[p].states for p in var.parents)))
        rules[v] = [
            Rule(
                when={p: (s,) for p, s in zip(var.parents, combo)},
                probabilities=dict(zip(var.states, table[:, j])),
                source=(source,),
            )
            for j, combo in enumerate(combos)
        ]
    return Knowledge(name=name, variables=variables, rules=rules, sources=dict(sources or {}), path=path)
