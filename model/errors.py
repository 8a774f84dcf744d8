"""Exceptions raised by lesionbn, and the helper that suggests valid names.

Every error says what is wrong, where, and what would be valid, so that a user
can correct the input without reading the source.
"""
from __future__ import annotations

import difflib
from typing import Iterable


class LesionBNError(Exception):
    """Base class of every error lesionbn raises on bad input."""


class ModelFileError(LesionBNError, ValueError):
    """A knowledge, BIF or XMLBIF file is malformed (bad structure, CPT or provenance)."""


class EvidenceError(LesionBNError, ValueError):
    """Evidence names a variable or state the network does not have, or is malformed."""


class ImpossibleEvidenceError(LesionBNError, ValueError):
    """The evidence has probability zero under the network: no posterior exists."""


class CaseDataError(LesionBNError, ValueError):
    """A case file (CSV/Parquet) is malformed; the message lists every problem found."""


def closest(name: str, options: Iterable[str], n: int = 3) -> list[str]:
    """Return up to ``n`` valid names closest to ``name`` (case-insensitive).

    >>> closest("babinsky", ["babinski", "clonus", "tone"])
    ['babinski']
    """
    options = list(options)
    lowered = {o.lower(): o for o in options}
    hits = difflib.get_close_matches(str(name).lower(), list(lowered), n=n, cutoff=0.5)
    if not hits:
        # fall back to substring matches ("reflex" -> reflexes_arms, reflexes_legs)
        hits = [o for o in lowered if str(name).lower() in o][:n]
    return [lowered[h] for h in hits]


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """A short ' Did you mean ...?' phrase, or '' when nothing is close."""
    hits = closest(name, options)
    if not hits:
        return ""
    return " Did you mean " + " or ".join(repr(h) for h in hits) + "?"


def valid_list(options: Iterable[str], limit: int = 25) -> str:
    """Format a list of valid names for a message, shortened when long."""
    options = list(options)
    shown = ", ".join(options[:limit])
    if len(options) > limit:
        shown += f", ... ({len(options)} in all)"
    return shown
