"""Case data: reading and checking case series, and simulating synthetic cohorts.

A case file is CSV or Parquet with one row per patient and one column per recorded variable
(see ``data/README.md``). Cells hold state names; a blank cell means "not recorded". An optional
``case_id`` column names the cases. :func:`read_cases` checks everything and raises one
:class:`~model.errors.CaseDataError` listing *every* problem; nothing is silently dropped::

    >>> from model import load_network
    >>> from model.cases import read_cases, simulate
    >>> net = load_network()
    >>> cohort = simulate(net, 200, seed=1)                # realistic missingness
    >>> data, report = read_cases(cohort, net)
    >>> report.n_rows
    200

:func:`simulate` draws cases by forward (ancestral) sampling on the network's tables, all
cases at once, and hides values with a documented missingness pattern.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import CaseDataError, did_you_mean, valid_list

#: the optional identifier column
CASE_ID = "case_id"
#: files larger than this are refused unless ``max_bytes`` says otherwise
MAX_BYTES = 500 * 1024 * 1024
#: at most this many problems are listed (the count is always exact)
MAX_LISTED = 60
CSV_SUFFIXES = (".csv", ".csv.gz", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")

#: Simulation defaults of the "realistic" missingness pattern (not clinical numbers: a generic
#: pattern of how case series are recorded). A bedside test group is recorded for a case with
#: probability ``bedside``; an investigation is ordered with a probability that falls with its
#: cost and invasiveness (``investigation`` times ``invasiveness_factor``, divided by
#: ``1 + cost / cost_scale``); all variables of an ordered test are recorded together, and each
#: recorded value is then lost with probability ``cell_loss``. Context variables are recorded
#: with probability ``context``.
REALISTIC = {
    "bedside": 0.92,
    "context": 0.97,
    "investigation": 0.75,
    "cost_scale": 4.0,
    "invasiveness_factor": {"none": 1.0, "minimal": 0.8, "moderate": 0.55, "high": 0.3},
    "cell_loss": 0.03,
}


@dataclass
class CaseReport:
    """What :func:`read_cases` found.

    ``missing`` has one row per variable column: recorded and missing counts. ``dropped_rows``
    counts rows not used (always 0: every row is kept; rows with no recorded value are counted in
    ``empty_rows``). ``trimmed_values`` counts cells whose surrounding spaces were removed.
    ``absent_variables`` are network variables with no column (never recorded).
    """

    n_rows: int
    n_columns: int
    missing: pd.DataFrame
    empty_rows: int = 0
    dropped_rows: int = 0
    dropped_values: int = 0
    trimmed_values: int = 0
    absent_variables: list[str] = field(default_factory=list)
    source: str = "<DataFrame>"

    @property
    def n_recorded(self) -> int:
        return int(self.missing["recorded"].sum()) if len(self.missing) else 0

    def summary(self) -> str:
        """A readable multi-line summary (printed by ``lesionbn validate``)."""
        lines = [
            f"{self.source}: {self.n_rows} case(s), {self.n_columns} variable column(s), "
            f"{self.n_recorded} recorded value(s)",
            f"rows used: {self.n_rows - self.dropped_rows} of {self.n_rows} (dropped: {self.dropped_rows}); "
            f"values dropped: {self.dropped_values}; rows with no recorded value: {self.empty_rows}; "
            f"values with surrounding spaces trimmed: {self.trimmed_values}",
        ]
        if self.absent_variables:
            lines.append(f"variables never recorded (no column): {valid_list(self.absent_variables, 40)}")
        if len(self.missing):
            lines.append("")
            lines.append(self.missing.to_string(index=False))
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- reading

def read_cases(source, net, max_bytes: int = MAX_BYTES) -> tuple[pd.DataFrame, CaseReport]:
    """Read and check a case file (CSV or Parquet) or a DataFrame against ``net``.

    Parameters
    ----------
    source : str, Path or DataFrame
        A ``.csv``/``.csv.gz`` or ``.parquet`` file, or a DataFrame of state names.
    net : Network
    max_bytes : int
        Refuse files larger than this (default 500 MB).

    Returns
    -------
    (data, report)
        ``data``: a DataFrame with the ``case_id`` column (if given) and the variable columns
        in network order, cells holding state names or NaN (not recorded). ``report``: a
        :class:`CaseReport`.

    Raises
    ------
    CaseDataError
        Listing every problem: unknown column (with the closest variable), unknown state (row,
        column, value, valid states), duplicate case ids, an empty file, a column with no valid
        value, malformed CSV, a file type that is not CSV/Parquet (pickles are never loaded),
        a file over the size limit.

    Examples
    --------
    >>> import pandas as pd
    >>> net = load_network()
    >>> data, report = read_cases(pd.DataFrame({"babinski": ["present", ""]}), net)
    >>> report.missing.set_index("variable").loc["babinski", "missing"]
    1
    """
    label, raw = _load(source, max_bytes)
    return check_cases(raw, net, label)


def _load(source, max_bytes: int) -> tuple[str, pd.DataFrame]:
    if isinstance(source, pd.DataFrame):
        return "<DataFrame>", source.copy()
    if not isinstance(source, (str, Path)):
        raise CaseDataError(f"cases must be a file path or a pandas DataFrame, got {type(source).__name__}")
    path = Path(source)
    if not path.exists():
        raise CaseDataError(f"case file not found: {path}")
    if path.is_dir():
        raise CaseDataError(f"{path} is a folder, not a case file")
    name = path.name.lower()
    size = path.stat().st_size
    if size > max_bytes:
        raise CaseDataError(
            f"{path}: {size / 1e6:.1f} MB is over the size limit of {max_bytes / 1e6:.1f} MB "
            "(split the file, or raise max_bytes)"
        )
    if size == 0:
        raise CaseDataError(f"{path}: the file is empty")
    if name.endswith(PARQUET_SUFFIXES):
        try:
            df = pd.read_parquet(path)
        except ImportError:
            raise CaseDataError("reading Parquet needs pyarrow (pip install 'lesionbn[parquet]')") from None
        except Exception as exc:  # noqa: BLE001 - any reader failure is bad input
            raise CaseDataError(f"{path}: not a readable Parquet file ({exc})") from None
        return str(path), df
    if not name.endswith(CSV_SUFFIXES):
        hint = " Pickles are never loaded (they can run code)." if name.endswith((".pkl", ".pickle")) else ""
        raise CaseDataError(
            f"{path}: unsupported file type {path.suffix!r}; case files are CSV (.csv, .csv.gz) "
            f"or Parquet (.parquet).{hint}"
        )
    return str(path), _read_csv(path, str(path))


def _read_csv(source, label: str) -> pd.DataFrame:
    """pandas' C reader, strict: every row must have as many fields as the header."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(source, dtype=str, keep_default_na=False, na_values=[""], index_col=False)
    except pd.errors.EmptyDataError:
        raise CaseDataError(f"{label}: the file is empty (no header row)") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        detail = str(exc).strip()
        if isinstance(exc, pd.errors.ParserWarning):
            detail = "a row has more fields than the header"
        raise CaseDataError(f"{label}: malformed CSV ({detail})") from None
    except UnicodeDecodeError as exc:
        raise CaseDataError(f"{label}: not UTF-8 text ({exc.reason} at byte {exc.start}); is it a CSV file?") from None


def check_cases(raw: pd.DataFrame, net, label: str = "<DataFrame>") -> tuple[pd.DataFrame, CaseReport]:
    """Check an already loaded table (see :func:`read_cases`)."""
    problems: list[str] = []
    states = net.states
    columns = [str(c) for c in raw.columns]
    raw = raw.copy()
    raw.columns = columns
    if len(raw.columns) == 0 or len(raw) == 0:
        raise CaseDataError(f"{label}: the file is empty (no {'rows' if len(raw.columns) else 'columns'})")
    dup_cols = sorted({c for c in columns if columns.count(c) > 1})
    if dup_cols:
        problems.append(f"duplicate column(s) {dup_cols}")
    for c in columns:
        if c != CASE_ID and c not in states:
            hint = did_you_mean(c, list(states) + [CASE_ID])
            problems.append(f"column {c!r}: not a variable of the network.{hint or ' (no close variable name)'}")
    ids = None
    if CASE_ID in columns and not dup_cols:
        ids = raw[CASE_ID]
        blank = ids.isna() | (ids.astype(str).str.strip() == "")
        for r in np.flatnonzero(blank.to_numpy())[:10]:
            problems.append(f"row {r + 1}: empty case_id")
        strs = ids[~blank].astype(str).str.strip()
        dups = strs[strs.duplicated(keep=False)]
        if len(dups):
            groups = dups.groupby(dups).groups
            shown = "; ".join(
                f"{k!r} at rows {', '.join(str(i + 1) for i in _positions(raw.index, v))}"
                for k, v in list(groups.items())[:10]
            )
            more = f" (and {len(groups) - 10} more)" if len(groups) > 10 else ""
            problems.append(f"duplicate case_id(s): {shown}{more}")
    var_cols = [c for c in columns if c in states]
    out = {}
    missing_rows = []
    trimmed = 0
    n_state_problems = 0
    if not dup_cols:
        for c in var_cols:
            vals = raw[c].to_numpy(dtype=object)
            text = np.where(pd.isna(vals), "", vals).astype(str)
            stripped_arr = np.char.strip(text)
            recorded = stripped_arr != ""
            trimmed += int(((text != stripped_arr) & recorded).sum())
            stripped = pd.Series(np.where(recorded, stripped_arr, None).astype(object), index=raw.index)
            valid = set(states[c])
            bad = pd.Series(recorded & ~np.isin(stripped_arr, list(valid)), index=raw.index)
            n_rec = int(recorded.sum())
            if n_rec == 0:
                problems.append(
                    f"column {c!r}: no recorded value in any row (remove the column, or fill it with states: "
                    f"{valid_list(states[c])})"
                )
            elif n_rec == int(bad.sum()):
                problems.append(f"column {c!r}: none of its {n_rec} value(s) is a valid state "
                                f"(valid: {valid_list(states[c])})")
            for r in np.flatnonzero(bad.to_numpy()):
                n_state_problems += 1
                if n_state_problems <= MAX_LISTED:
                    value = stripped.iloc[r]
                    problems.append(
                        f"row {r + 1}{_id_label(ids, r)}, column {c!r}: {value!r} is not a state of {c!r} "
                        f"(valid: {valid_list(states[c])}).{did_you_mean(value, states[c])}"
                    )
            out[c] = stripped
            missing_rows.append({"variable": c, "role": net.roles[c], "recorded": n_rec,
                                 "missing": len(raw) - n_rec,
                                 "missing_fraction": round((len(raw) - n_rec) / len(raw), 4)})
    if n_state_problems > MAX_LISTED:
        problems.append(f"... and {n_state_problems - MAX_LISTED} more unknown state(s)")
    if problems:
        n = len(problems) - (1 if n_state_problems > MAX_LISTED else 0) + max(0, n_state_problems - MAX_LISTED)
        raise CaseDataError(f"{label}: {n} problem(s) in the case data:\n  - " + "\n  - ".join(problems))
    order = [v for v in net.variables if v in out]
    data = pd.DataFrame({v: out[v] for v in order}, index=pd.RangeIndex(len(raw)))
    if ids is not None:
        data.insert(0, CASE_ID, ids.astype(str).str.strip().to_numpy())
    empty = int(data[order].isna().all(axis=1).sum()) if order else len(data)
    missing = pd.DataFrame(missing_rows, columns=["variable", "role", "recorded", "missing", "missing_fraction"])
    missing = missing.set_index("variable").loc[order].reset_index() if order else missing
    report = CaseReport(
        n_rows=len(raw), n_columns=len(order), missing=missing, empty_rows=empty,
        trimmed_values=trimmed, absent_variables=[v for v in net.variables if v not in out], source=label,
    )
    return data, report


def _positions(index: pd.Index, labels) -> list[int]:
    return [int(index.get_loc(lbl)) for lbl in labels]


def _id_label(ids, r: int) -> str:
    if ids is None:
        return ""
    return f" (case_id {str(ids.iloc[r]).strip()!r})"


def encode(data: pd.DataFrame, net) -> np.ndarray:
    """Integer codes ``(N, n_variables)`` in ``net.variables`` order; -1 = not recorded.

    ``data`` must be checked already (:func:`read_cases`); absent columns are all -1.
    """
    n = len(data)
    codes = np.full((n, len(net.variables)), -1, dtype=np.int16)
    for j, v in enumerate(net.variables):
        if v in data.columns:
            cat = pd.Categorical(data[v], categories=net.states[v])
            codes[:, j] = cat.codes
    return codes


def decode(codes: np.ndarray, net, variables: Sequence[str] | None = None) -> pd.DataFrame:
    """The inverse of :func:`encode`: state names, NaN for -1."""
    variables = list(variables or net.variables)
    idx = {v: j for j, v in enumerate(net.variables)}
    out = {}
    for v in variables:
        names = np.array(list(net.states[v]) + [None], dtype=object)
        col = codes[:, idx[v]].astype(np.int64)
        out[v] = names[np.where(col < 0, len(names) - 1, col)]
    return pd.DataFrame(out)


# --------------------------------------------------------------------------- simulation

def sample_codes(net, n: int, rng: np.random.Generator, tables: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """Forward-sample ``n`` complete cases: integer codes ``(n, n_variables)`` in network order.

    Vectorised ancestral sampling: each variable, parents first, is drawn for all cases at once
    from the columns of its table selected by the parents' sampled states.
    """
    tables = tables if tables is not None else net.knowledge.tables()
    idx = {v: j for j, v in enumerate(net.variables)}
    codes = np.empty((n, len(net.variables)), dtype=np.int16)
    for v in net.variables:
        t = np.asarray(tables[v], dtype=float)
        card = t.shape[0]
        flat = t.reshape(card, -1)
        parents = net.parents(v)
        if parents:
            col = np.ravel_multi_index(tuple(codes[:, idx[p]].astype(np.intp) for p in parents), t.shape[1:])
        else:
            col = np.zeros(n, dtype=np.intp)
        cum = np.cumsum(flat, axis=0)  # (card, ncols)
        cum[-1] = 1.0 + 1e-12
        u = rng.random(n)
        codes[:, idx[v]] = (u[None, :] >= cum[:, col]).sum(axis=0).clip(0, card - 1)
    return codes


def simulate(net, n: int, seed: int | None = None, missing: str | float = "realistic",
             label_latent: bool | Sequence[str] = False) -> pd.DataFrame:
    """Draw a synthetic cohort of ``n`` cases from ``net``.

    Parameters
    ----------
    net : Network
    n : int
    seed : int, optional
    missing : "realistic", "none" or a rate in [0, 1)
        ``"realistic"``: findings are grouped by the network's test groups (``net.tests``); a
        group whose variables are all findings with invasiveness "none" and the lowest cost is
        *bedside* and recorded for most cases, the others are *investigations* ordered for a
        share of cases that falls with cost and invasiveness (:data:`REALISTIC`). Bedside means
        invasiveness "none" and a cost below the largest jump (log scale) in the sorted test costs. ``"none"``:
        every visible value recorded. A number: each visible value is blank with that probability.
    label_latent : bool or list of str
        Hidden variables (roles latent and helper) are left out, except: ``True`` records the
        latent (diagnostic target) variables, a list records exactly those hidden variables.

    Returns
    -------
    DataFrame with a ``case_id`` column and one column per recorded variable (state names, NaN
    = not recorded), in network order.

    Examples
    --------
    >>> df = simulate(load_network(), 5, seed=0, missing="none", label_latent=True)
    >>> len(df)
    5
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    rng = np.random.default_rng(seed)
    codes = sample_codes(net, int(n), rng)
    mask = recorded_mask(net, int(n), rng, missing, label_latent)
    codes = np.where(mask, codes, -1)
    keep = [v for j, v in enumerate(net.variables) if mask[:, j].any()]
    df = decode(codes, net, keep)
    width = len(str(n))
    df.insert(0, CASE_ID, [f"sim{i + 1:0{width}d}" for i in range(n)])
    return df


def visible_variables(net, label_latent: bool | Sequence[str] = False) -> list[str]:
    """The variables a simulated case series records at all."""
    if label_latent is True:
        labelled = set(net.latent) & set(net.hidden)
    elif label_latent is False or label_latent is None:
        labelled = set()
    else:
        labelled = set(label_latent)
        unknown = labelled - set(net.variables)
        if unknown:
            raise ValueError(f"label_latent names unknown variable(s) {sorted(unknown)}")
    hidden = set(net.hidden) - labelled
    return [v for v in net.variables if v not in hidden]


def bedside_tests(net) -> tuple[list, list]:
    """Split ``net.tests`` into (bedside, investigations), from cost and invasiveness only."""
    tests = net.tests
    if not tests:
        return [], []
    costs = sorted({max(t.cost, 1e-9) for t in tests})
    if len(costs) == 1:
        threshold = costs[0]
    else:
        # the largest jump in cost (on a log scale) separates bedside findings from investigations
        gaps = [math.log(b / a) for a, b in zip(costs, costs[1:])]
        threshold = costs[int(np.argmax(gaps))]
    bedside = [t for t in tests if t.invasiveness in ("none", "") and t.cost <= threshold]
    return bedside, [t for t in tests if t not in bedside]


def recorded_mask(net, n: int, rng: np.random.Generator, missing: str | float = "realistic",
                  label_latent: bool | Sequence[str] = False) -> np.ndarray:
    """Boolean ``(n, n_variables)``: which values a simulated case series records."""
    visible_list = visible_variables(net, label_latent)
    visible = set(visible_list)
    idx = {v: j for j, v in enumerate(net.variables)}
    mask = np.zeros((n, len(net.variables)), dtype=bool)
    for v in visible:
        mask[:, idx[v]] = True
    if missing == "none":
        return mask
    if isinstance(missing, str) and missing != "realistic":
        try:
            missing = float(missing)
        except ValueError:
            raise ValueError(f"missing must be 'realistic', 'none' or a rate in [0, 1); got {missing!r}") from None
    if not isinstance(missing, str):
        rate = float(missing)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"missing rate must be in [0, 1), got {rate}")
        hidden_free = [idx[v] for v in visible_list]
        drop = rng.random((n, len(hidden_free))) < rate
        mask[:, hidden_free] &= ~drop
        return mask
    cfg = REALISTIC
    labelled_hidden = visible & set(net.hidden)
    covered: set[str] = set()
    bedside, investigations = bedside_tests(net)
    for group, is_bedside in [(t, True) for t in bedside] + [(t, False) for t in investigations]:
        cols = [idx[v] for v in group.variables if v in visible and v not in covered and v not in labelled_hidden]
        if not cols:
            continue
        covered.update(group.variables)
        if is_bedside:
            p = cfg["bedside"]
        else:
            factor = cfg["invasiveness_factor"].get(group.invasiveness, 0.5)
            p = cfg["investigation"] * factor / (1.0 + group.cost / cfg["cost_scale"])
        ordered = rng.random(n) < p
        mask[:, cols] &= ordered[:, None]
    for v in [x for x in visible_list if x not in covered and x not in labelled_hidden]:
        p = cfg["context"] if net.roles[v] == "context" else cfg["bedside"]
        mask[:, idx[v]] &= rng.random(n) < p
    loss = rng.random(mask.shape) < cfg["cell_loss"]
    for v in sorted(labelled_hidden):
        loss[:, idx[v]] = False
    mask &= ~loss
    return mask


def write_cases(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a case table as CSV (blank = not recorded) or Parquet, by suffix."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        df.to_parquet(path, index=False)
    elif name.endswith(CSV_SUFFIXES):
        df.to_csv(path, index=False)
    else:
        raise CaseDataError(f"{path}: write .csv or .parquet")
    return path


def read_text_cases(text: str, net) -> tuple[pd.DataFrame, CaseReport]:
    """Parse CSV text (used by the app's upload box and by tests)."""
    raw = _read_csv(io.StringIO(text), "<text>")
    return check_cases(raw, net, "<text>")
