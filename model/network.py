"""The :class:`Network`: a discrete Bayesian network with names, roles and provenance.

This is the object every face of lesionbn (CLI, app, experiments) talks to::

    >>> from model import load_network
    >>> net = load_network()                                   # the default motor-lesion network
    >>> post = net.posterior({"babinski": "present", "reflexes_legs": "hyper"})
    >>> post["lesion_type"].idxmax()
    'UMN'

It works the same on any discrete network read from BIF or XMLBIF
(``load_network("alarm.bif")``). Exact posteriors come from the compiled engine
(:mod:`model.engine`); pgmpy's ``VariableElimination`` is the reference it is tested against.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import EvidenceError, ImpossibleEvidenceError
from .evidence import Evidence, cases_to_likelihoods, check_variable, to_likelihoods
from .knowledge import Knowledge, TestGroup, read_knowledge, to_pgmpy


def load_network(path: str | Path | None = None) -> "Network":
    """Load the default network, or a knowledge file (.yaml), BIF or XMLBIF file (optionally .gz).

    >>> net = load_network()
    >>> "lesion_site" in net.latent
    True
    """
    from .io import detect_format, read_interchange

    if path is None:
        return Network(read_knowledge())
    fmt = detect_format(Path(path))
    if fmt == "yaml":
        return Network(read_knowledge(path))
    return Network(read_interchange(path))


#: Network.posterior_batch converts and runs cases in slices of this many rows
BATCH_ROWS = 50_000


@dataclass
class _Stacked:
    marginals: dict
    log_evidence: np.ndarray
    possible: np.ndarray


@dataclass(frozen=True)
class BatchResult:
    """Posteriors for many cases at once.

    ``posteriors[target]`` is a DataFrame (one row per case, one column per state);
    ``log_evidence`` is log P(evidence) per case (``-inf`` where the evidence is impossible);
    ``possible`` flags the cases whose evidence has non-zero probability. Rows of impossible
    cases hold NaN *and* are flagged False in ``possible``.
    """

    posteriors: dict[str, pd.DataFrame]
    log_evidence: pd.Series
    possible: pd.Series

    def top(self, target: str, k: int = 1) -> pd.DataFrame:
        """The ``k`` most probable states of ``target`` for each case, with probabilities."""
        df = self.posteriors[target]
        values = df.to_numpy()
        order = np.argsort(-values, axis=1)[:, :k]
        out = {}
        for i in range(k):
            out[f"state_{i + 1}"] = df.columns.to_numpy()[order[:, i]]
            out[f"p_{i + 1}"] = values[np.arange(len(df)), order[:, i]]
        return pd.DataFrame(out, index=df.index)

    def to_frame(self) -> pd.DataFrame:
        """One flat table: ``possible``, ``log_evidence``, then for each target its most
        probable state and one ``target=state`` column per state (its posterior).

        Examples
        --------
        >>> net = load_network()
        >>> cases = pd.DataFrame({"babinski": ["present", None]})
        >>> net.posterior_batch(cases, targets="lesion_type").to_frame().columns[:4].tolist()
        ['possible', 'log_evidence', 'lesion_type', 'lesion_type=UMN']
        """
        parts = [self.possible, self.log_evidence]
        for t, df in self.posteriors.items():
            values = df.to_numpy()
            best = np.where(self.possible.to_numpy(),
                            df.columns.to_numpy()[np.argmax(np.nan_to_num(values, nan=-1.0), axis=1)],
                            None)
            parts.append(pd.Series(best, index=df.index, name=t))
            parts.append(df.rename(columns=lambda s, t=t: f"{t}={s}"))
        return pd.concat(parts, axis=1)


class Network:
    """A discrete Bayesian network with exact inference.

    Parameters
    ----------
    knowledge : Knowledge
        The parsed knowledge (from :func:`model.knowledge.read_knowledge` or an imported file).
    """

    def __init__(self, knowledge: Knowledge):
        self.knowledge = knowledge
        self._order = knowledge.order

    @cached_property
    def model(self):
        """The pgmpy ``DiscreteBayesianNetwork`` (built on first use: importing pgmpy takes ~2 s)."""
        return to_pgmpy(self.knowledge)

    # ------------------------------------------------------------------ description
    @property
    def name(self) -> str:
        return self.knowledge.name

    @property
    def version(self) -> str:
        return self.knowledge.version

    @property
    def variables(self) -> list[str]:
        """All variables, parents before children."""
        return list(self._order)

    @cached_property
    def states(self) -> dict[str, list[str]]:
        """Variable -> list of its state names, in order."""
        return {v: list(self.knowledge.variables[v].states) for v in self._order}

    @cached_property
    def roles(self) -> dict[str, str]:
        return {v: self.knowledge.variables[v].role for v in self._order}

    @property
    def latent(self) -> list[str]:
        """Diagnostic targets (role ``latent``); every variable for networks that declare none."""
        lat = [v for v in self._order if self.roles[v] == "latent"]
        return lat or list(self._order)

    @property
    def hidden(self) -> list[str]:
        """Variables never observed at the bedside: latent targets and helpers."""
        return [v for v in self._order if self.roles[v] in ("latent", "helper")]

    @property
    def observable(self) -> list[str]:
        """Variables a user can set as evidence (findings and context)."""
        if not any(r in ("latent", "helper") for r in self.roles.values()):
            return list(self._order)
        return [v for v in self._order if self.roles[v] in ("finding", "context")]

    @property
    def tests(self) -> list[TestGroup]:
        """Orderable test groups; a network without a test table treats each observable variable
        as its own test of cost 1."""
        if self.knowledge.tests:
            return list(self.knowledge.tests)
        return [TestGroup(name=v, label=v, variables=(v,), cost=1.0) for v in self.observable]

    @property
    def groups(self) -> list[tuple[str, tuple[str, ...]]]:
        """Display groups of observable variables (one group 'Findings' when the file has none)."""
        if self.knowledge.groups:
            return list(self.knowledge.groups)
        return [("Findings", tuple(self.observable))]

    def description(self, variable: str) -> str:
        check_variable(variable, self.states)
        return self.knowledge.variables[variable].description

    def parents(self, variable: str) -> list[str]:
        check_variable(variable, self.states)
        return list(self.knowledge.variables[variable].parents)

    def describe(self) -> pd.DataFrame:
        """One row per variable: role, states, parents and description."""
        rows = []
        for v in self._order:
            var = self.knowledge.variables[v]
            rows.append(
                {
                    "variable": v,
                    "role": var.role,
                    "states": ", ".join(var.states),
                    "parents": ", ".join(var.parents),
                    "description": var.description,
                }
            )
        return pd.DataFrame(rows)

    def cpt(self, variable: str) -> pd.DataFrame:
        """The CPT of ``variable``: one row per parent configuration, a column per state, and
        the provenance (source keys) of each row."""
        check_variable(variable, self.states)
        var = self.knowledge.variables[variable]
        table = self.knowledge.tables()[variable].reshape(var.card, -1).T
        index = pd.MultiIndex.from_product([self.states[p] for p in var.parents], names=list(var.parents)) if var.parents else pd.Index(["(prior)"], name="")
        df = pd.DataFrame(table, index=index, columns=list(var.states))
        df["source"] = ["; ".join(s) for s in self.knowledge.row_sources(variable)]
        return df

    # ------------------------------------------------------------------ inference
    @cached_property
    def engine(self):
        """The compiled exact engine (built on first use, then reused)."""
        import os

        try:
            from .engine import InferenceEngine
        except ImportError:
            InferenceEngine = None
        if InferenceEngine is None or os.environ.get("LESIONBN_ENGINE") == "reference":
            from .reference import ReferenceEngine

            return ReferenceEngine(self.model)
        cards = {v: len(s) for v, s in self.states.items()}
        parents = {v: list(self.knowledge.variables[v].parents) for v in self._order}
        return InferenceEngine(self.variables, cards, parents, self.knowledge.tables())

    def _targets(self, targets: str | Sequence[str] | None) -> list[str]:
        if targets is None:
            return self.latent
        if isinstance(targets, str):
            targets = [targets]
        for t in targets:
            check_variable(t, self.states)
        return list(targets)

    def _query(self, likelihoods: Mapping[str, np.ndarray], targets: list[str]):
        return self.engine.query(likelihoods, targets)

    def posterior(self, evidence: Evidence | None = None, targets: str | Sequence[str] | None = None) -> dict[str, pd.Series]:
        """Posterior distribution of each target given the evidence.

        Parameters
        ----------
        evidence : mapping
            variable -> state name, or variable -> likelihood (soft evidence).
        targets : str or list of str, optional
            Defaults to the latent (diagnostic) variables.

        Returns
        -------
        dict of target -> pandas Series over the target's states (sums to 1).

        Raises
        ------
        EvidenceError
            An unknown variable or state (with the closest valid names).
        ImpossibleEvidenceError
            The evidence has probability zero.
        """
        targets = self._targets(targets)
        lik = to_likelihoods(evidence, self.states)
        result = self._query(lik, targets)
        if not bool(result.possible[0]):
            raise ImpossibleEvidenceError(_impossible_message(evidence))
        return {t: pd.Series(result.marginals[t][0], index=self.states[t], name=t) for t in targets}

    def probability_of_evidence(self, evidence: Evidence | None) -> float:
        """P(evidence) under the network (for soft evidence, the expected likelihood)."""
        lik = to_likelihoods(evidence, self.states)
        if not lik:
            return 1.0
        result = self._query(lik, [])
        return float(np.exp(result.log_evidence[0]))

    def log_probability_of_evidence(self, evidence: Evidence | None) -> float:
        """log P(evidence); ``-inf`` when the evidence is impossible."""
        lik = to_likelihoods(evidence, self.states)
        if not lik:
            return 0.0
        return float(self._query(lik, []).log_evidence[0])

    def posterior_batch(
        self,
        cases: pd.DataFrame,
        targets: str | Sequence[str] | None = None,
        on_impossible: str = "raise",
    ) -> BatchResult:
        """Posteriors of the targets for every case (row) of ``cases`` in one vectorised pass.

        Cells hold state names; blank/NaN means not observed; a ``case_id`` column, if present,
        becomes the index. ``on_impossible="raise"`` (default) raises naming the impossible cases;
        ``"flag"`` returns them flagged in ``possible`` instead.
        """
        if on_impossible not in ("raise", "flag"):
            raise ValueError("on_impossible must be 'raise' or 'flag'")
        targets = self._targets(targets)
        if not isinstance(cases, pd.DataFrame):
            raise EvidenceError(f"cases must be a pandas DataFrame, got {type(cases).__name__}")
        index = pd.Index(cases["case_id"], name="case_id") if "case_id" in cases.columns else cases.index
        n = len(cases)
        # Slices of BATCH_ROWS cases bound the memory of the likelihood arrays for any n.
        marginals: dict[str, list] = {t: [] for t in targets}
        log_ev, flags = [], []
        for start in range(0, max(n, 1), BATCH_ROWS):
            part = cases.iloc[start:start + BATCH_ROWS]
            lik = cases_to_likelihoods(part, self.states, first_row=start + 1)
            res = self.engine.query(lik, targets, n_cases=len(part))
            for t in targets:
                marginals[t].append(res.marginals[t])
            log_ev.append(res.log_evidence)
            flags.append(res.possible)
        result = _Stacked({t: np.concatenate(m) for t, m in marginals.items()},
                          np.concatenate(log_ev), np.concatenate(flags))
        possible = pd.Series(np.asarray(result.possible, dtype=bool), index=index, name="possible")
        if on_impossible == "raise" and not possible.all():
            bad = list(index[~possible.to_numpy()][:10])
            raise ImpossibleEvidenceError(
                f"{int((~possible).sum())} case(s) have evidence of probability zero under the network "
                f"(first: {bad}); pass on_impossible='flag' to get them flagged instead"
            )
        posteriors = {
            t: pd.DataFrame(result.marginals[t], index=index, columns=self.states[t]) for t in targets
        }
        log_ev = pd.Series(result.log_evidence, index=index, name="log_evidence")
        return BatchResult(posteriors=posteriors, log_evidence=log_ev, possible=possible)

    # ------------------------------------------------------------------ recommendations and explanation
    # (model/recommend.py, model/explain.py)
    def recommend(self, evidence: Evidence | None = None, target: str | None = None, **kwargs) -> pd.DataFrame:
        """Rank the available tests by expected information about ``target`` (see
        :func:`model.recommend.recommend` for the options and columns)."""
        from .recommend import recommend

        return recommend(self, evidence, target=target, **kwargs)

    def explain(self, evidence: Evidence | None = None, target: str | None = None, **kwargs):
        """Weight of evidence of each finding and the conflict measure (see
        :func:`model.explain.explain`)."""
        from .explain import explain

        return explain(self, evidence, target=target, **kwargs)

    def most_probable_explanation(self, evidence: Evidence | None = None, variables: Sequence[str] | None = None,
                                  n: int = 5, **kwargs) -> pd.DataFrame:
        """The ``n`` most probable joint configurations of ``variables`` (default: the latent
        ones) given the evidence (see :func:`model.explain.most_probable_explanation`)."""
        from .explain import most_probable_explanation

        return most_probable_explanation(self, evidence, variables=variables, n=n, **kwargs)

    # ------------------------------------------------------------------ learning and evaluation
    # (model/cases.py, model/learning.py, model/evaluation.py)
    def fit(self, cases, prior_strength: float = 10.0, **kwargs):
        """Update the tables from case data with the current ones as a Dirichlet prior of
        strength ``prior_strength``; returns a :class:`model.learning.FitResult` whose
        ``network`` is the fitted network. See :func:`model.learning.fit`."""
        from .learning import fit

        return fit(self, cases, prior_strength=prior_strength, **kwargs)

    # ------------------------------------------------------------------ sensitivity and uncertainty
    # (model/sensitivity.py, model/uncertainty.py)
    def sensitivity(self, evidence: Evidence | None = None, target: str | None = None, state: str | None = None,
                    **kwargs) -> pd.DataFrame:
        """Tornado table: CPT entries ranked by how far they move P(target=state | evidence) over a
        plausible range. See :func:`model.sensitivity.parameter_sensitivity`."""
        from .sensitivity import parameter_sensitivity

        return parameter_sensitivity(self, evidence, target, state, **kwargs)

    def sensitivity_function(self, variable: str, value: str, parent_config: Mapping[str, str] | None = None,
                             evidence: Evidence | None = None, target: str | None = None,
                             state: str | None = None):
        """Exact P(target=state | e) as a function of P(variable=value | parent_config).
        See :func:`model.sensitivity.sensitivity_function`."""
        from .sensitivity import sensitivity_function

        return sensitivity_function(self, variable, value, parent_config, evidence, target, state)

    def admissible_deviation(self, evidence: Evidence | None = None, target: str | None = None,
                             **kwargs) -> pd.DataFrame:
        """Smallest change of each CPT entry that changes the leading state of ``target``.
        See :func:`model.sensitivity.admissible_deviation`."""
        from .sensitivity import admissible_deviation

        return admissible_deviation(self, evidence, target, **kwargs)

    def evidence_sensitivity(self, evidence: Evidence, target: str | None = None) -> pd.DataFrame:
        """The posterior had each finding been missing or different.
        See :func:`model.sensitivity.evidence_sensitivity`."""
        from .sensitivity import evidence_sensitivity

        return evidence_sensitivity(self, evidence, target)

    def posterior_intervals(self, evidence=None, targets: str | Sequence[str] | None = None, **kwargs) -> pd.DataFrame:
        """Credible intervals of the posteriors under Dirichlet uncertainty of the CPTs
        (target, state, posterior, mean, sd, low, high, p_top).
        See :func:`model.uncertainty.posterior_intervals`."""
        from .uncertainty import posterior_intervals

        return posterior_intervals(self, evidence, targets, **kwargs)

    # ------------------------------------------------------------------ export
    def export(self, path: str | Path, fmt: str | None = None) -> Path:
        """Write the network as BIF, XMLBIF (pgmpy writers) or a knowledge file (.yaml)."""
        from .io import detect_format, write_interchange
        from .knowledge_write import write_knowledge

        path = Path(path)
        fmt = fmt or detect_format(path)
        if fmt == "yaml":
            return write_knowledge(self.knowledge, path)
        return write_interchange(self.model, path, fmt)

    def __repr__(self) -> str:
        return f"<Network {self.name!r}: {len(self._order)} variables, {sum(len(self.knowledge.variables[v].parents) for v in self._order)} edges>"


def _impossible_message(evidence: Evidence | None) -> str:
    shown = ", ".join(f"{k}={v}" for k, v in (evidence or {}).items())
    return (
        f"the evidence ({shown}) has probability zero under the network, so no posterior exists; "
        "one of these findings is impossible together with the others (check for a typo, or a finding the "
        "model rules out)"
    )
