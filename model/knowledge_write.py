"""Writing a :class:`~model.knowledge.Knowledge` back to the YAML knowledge-file format.

The output round-trips with :func:`~model.knowledge.read_knowledge`: reading a
written file gives the same variables, rules (as they are, with their
provenance; probabilities rounded to 12 decimals), sources, tests and groups.
Used for fitted networks (``lesionbn fit --out``) and for ``Network.export`` to
``.yaml``. The format is described in ``docs/knowledge-format.md``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .knowledge import FORMAT, Knowledge


def knowledge_to_document(kb: Knowledge) -> dict:
    """The YAML document of ``kb`` (rules as they are; round-trips through ``parse_knowledge``)."""
    doc: dict[str, Any] = {"format": FORMAT, "name": kb.name}
    if kb.version:
        doc["version"] = kb.version
    if kb.description:
        doc["description"] = kb.description
    doc["sources"] = dict(kb.sources)
    if kb.groups:
        doc["groups"] = [{"name": g, "variables": list(vs)} for g, vs in kb.groups]
    if kb.tests:
        doc["tests"] = [
            {
                "name": t.name,
                "label": t.label,
                "variables": list(t.variables),
                "cost": t.cost,
                "invasiveness": t.invasiveness,
                "time_to_result": t.time_to_result,
                "source": _source_out(t.source),
                **({"description": t.description} if t.description else {}),
            }
            for t in kb.tests
        ]
    variables: dict[str, Any] = {}
    for v in kb.order:
        var = kb.variables[v]
        entry: dict[str, Any] = {"role": var.role, "description": var.description, "states": list(var.states)}
        if var.state_descriptions:
            entry["state_descriptions"] = dict(var.state_descriptions)
        entry["parents"] = list(var.parents)
        entry["cpt"] = [
            {
                **({"when": {p: (list(a) if len(a) > 1 else a[0]) for p, a in r.when.items()}} if r.when else {}),
                "p": {s: round(float(x), 12) for s, x in r.probabilities.items()},
                "source": _source_out(r.source),
                **({"note": r.note} if r.note else {}),
            }
            for r in kb.rules[v]
        ]
        variables[v] = entry
    doc["variables"] = variables
    return doc


def _source_out(source: tuple[str, ...]):
    return source[0] if len(source) == 1 else list(source)


class _Dumper(yaml.SafeDumper):
    """Quotes strings such as 'yes'/'no' so that other YAML readers keep them strings."""


def write_knowledge(kb: Knowledge, path: str | Path) -> Path:
    """Write ``kb`` as a knowledge file that :func:`read_knowledge` reads back identically."""
    path = Path(path)
    text = yaml.dump(knowledge_to_document(kb), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)
    path.write_text(text, encoding="utf-8")
    return path


