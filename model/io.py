"""Reading and writing networks in pgmpy's interchange formats (BIF, XMLBIF).

Tables read from files are normalised column by column (bnlearn files are off by up to 3e-7,
enough for two exact engines to disagree at 1e-8); the size of the largest correction is kept
in ``Knowledge.description`` so that the user is told.
"""
from __future__ import annotations

import gzip
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .errors import ModelFileError
from .knowledge import Knowledge, from_tables

#: a column may be off by this much and still be normalised silently (beyond: an error)
NORMALISE_TOLERANCE = 1e-3
#: files larger than this are refused (a typo'd path to a data dump, not a network)
MAX_FILE_BYTES = 200 * 1024 * 1024

FORMATS = {"bif": "BIF", "xmlbif": "XMLBIF"}


def detect_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith(".bif"):
        return "bif"
    if name.endswith((".xml", ".xmlbif")):
        return "xmlbif"
    if name.endswith((".yaml", ".yml")):
        return "yaml"
    raise ModelFileError(
        f"{path}: unknown network file type; expected .yaml (knowledge file), .bif, .xmlbif/.xml (optionally .gz)"
    )


def read_interchange(path: str | Path) -> Knowledge:
    """Read a BIF or XMLBIF file (optionally gzipped) into a :class:`Knowledge`."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"network file not found: {path}")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ModelFileError(f"{path}: {path.stat().st_size / 1e6:.0f} MB is too large for a network file")
    fmt = detect_format(path)
    raw = path.read_bytes()
    if path.name.lower().endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except OSError as exc:
            raise ModelFileError(f"{path}: not a valid gzip file ({exc})") from None
    text = raw.decode("utf-8", errors="replace")
    if not text.strip():
        raise ModelFileError(f"{path}: the file is empty")
    from pgmpy.readwrite import BIFReader, XMLBIFReader

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if fmt == "bif":
                model = BIFReader(string=text).get_model()
            else:
                with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False, encoding="utf-8") as fh:
                    fh.write(text)
                    tmp = fh.name
                try:
                    model = XMLBIFReader(tmp).get_model()
                finally:
                    os.unlink(tmp)
    except Exception as exc:  # pgmpy raises many kinds of errors on malformed files
        raise ModelFileError(f"{path}: could not parse as {FORMATS[fmt]}: {type(exc).__name__}: {exc}") from None
    if model.number_of_nodes() == 0:
        raise ModelFileError(f"{path}: could not parse as {FORMATS[fmt]}: no variables found")
    return knowledge_from_pgmpy(model, name=path.name.split(".")[0], origin=str(path))


def knowledge_from_pgmpy(model, name: str = "network", origin: str | None = None) -> Knowledge:
    """Turn a pgmpy ``DiscreteBayesianNetwork`` into a :class:`Knowledge`, checking every CPT."""
    states, parents, tables = {}, {}, {}
    problems = []
    worst = 0.0
    nodes = list(model.nodes())
    for v in nodes:
        cpd = model.get_cpds(v)
        if cpd is None:
            problems.append(f"variable {v!r}: has no CPT")
            continue
        v_states = [str(s) for s in cpd.state_names[v]]
        v_parents = [str(p) for p in cpd.variables[1:]]
        values = np.asarray(cpd.get_values(), dtype=float)
        if not np.all(np.isfinite(values)) or (values < 0).any():
            problems.append(f"variable {v!r}: CPT has negative or non-finite entries")
            continue
        sums = values.sum(axis=0)
        bad = np.flatnonzero(np.abs(sums - 1) > NORMALISE_TOLERANCE)
        if bad.size:
            problems.append(
                f"variable {v!r}: CPT column {int(bad[0])} sums to {sums[bad[0]]:.6g}, not 1 "
                f"(tolerance {NORMALISE_TOLERANCE:g}); {bad.size} bad column(s)"
            )
            continue
        worst = max(worst, float(np.abs(sums - 1).max()))
        values = values / sums
        states[v] = v_states
        parents[v] = v_parents
        card = [len(cpd.state_names[p]) for p in cpd.variables[1:]]
        tables[v] = values.reshape(len(v_states), *card)
    if problems:
        raise ModelFileError(f"{origin or name}: {len(problems)} problem(s):\n  - " + "\n  - ".join(problems))
    kb = from_tables(name, states, parents, tables, source="imported", sources={"imported": f"read from {origin or name}"}, path=origin)
    kb.description = f"Imported from {origin or name}; CPT columns normalised (largest correction {worst:.2e})."
    return kb


def write_interchange(model, path: str | Path, fmt: str | None = None) -> Path:
    """Write a pgmpy model as BIF or XMLBIF (``fmt`` from the suffix when not given)."""
    from pgmpy.readwrite import BIFWriter, XMLBIFWriter

    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise ModelFileError(f"cannot export to {fmt!r}; choose one of {', '.join(FORMATS)}")
    writer = BIFWriter(model) if fmt == "bif" else XMLBIFWriter(model)
    if hasattr(writer, "write"):
        writer.write(str(path))
    elif fmt == "bif":  # pgmpy < 1.1
        writer.write_bif(str(path))
    else:
        writer.write_xmlbif(str(path))
    return path
