"""Compiled, batched, exact inference for discrete Bayesian networks.

The engine answers, for a batch of ``N`` cases at once, the posterior marginals of a set of
target variables and the log-probability of each case's evidence.  It knows nothing about any
particular domain: it takes a network as plain tables (``InferenceEngine(variables, cards,
parents, tables)``) or converts a pgmpy ``DiscreteBayesianNetwork`` (``from_pgmpy``).  pgmpy is
not used at run time.

Modules: :mod:`.triangulate` (pruning, moral graph, elimination orders, junction forest),
:mod:`.contraction` (batched numpy kernels), :mod:`.core` (plans, propagation, public API).
The design, with measured figures, is described in ``docs/engine.md``.

Evidence as likelihoods
-----------------------
Every finding is a *likelihood vector* ``L_v`` over the states of ``v``: a one-hot row is hard
evidence, any non-negative row is soft (virtual) evidence, and an all-ones row means "not
observed".  Because a case-specific missing finding is just an all-ones row, all cases of a
batch share one compiled plan whatever subset of findings each case observes, and the whole
batch goes through the same few vectorised numpy calls.  ``P(e) = sum_x P(x) prod_v L_v(x_v)``.

Algorithm: Shafer-Shenoy propagation on a junction forest, with a leading batch axis
-------------------------------------------------------------------------------------
A *plan* is compiled once per (set of variables carrying likelihoods, targets) and cached:

1. **Pruning.**  Only ancestors of evidence and target variables matter; every other node is
   barren (its table sums to one) and is dropped.  Likelihoods that are all ones in every case
   are dropped before the plan is looked up, so "nothing observed" costs nothing.
2. **Triangulation.**  The pruned network is moralised and eliminated greedily twice, by
   *min-fill* (ties: min-weight) and by *min-weight* (ties: min-fill), final ties by network
   order (deterministic); the order whose cliques have the smallest total state space is kept.
3. **Junction forest.**  The clique of each eliminated ``v`` is attached to the clique of the
   first-eliminated of its other members (running intersection holds) and cliques contained
   in a neighbour are merged away.  Each table and likelihood is assigned to the smallest
   clique holding its family.  Each tree is rooted at the node holding the most targets.  A
   node with more than three children gets factor-free *helper* nodes, built by repeatedly
   pairing the two child groups whose separators have the smallest union; this bounds how many
   messages one step multiplies (so propagation stays linear in the number of findings, and a
   star of 60 findings around one clique cannot underflow).
4. **Messages as contractions.**  The message ``u -> w`` is one einsum over the batch:
   ``u``'s tables x its likelihoods x messages into ``u`` from every neighbour but ``w``,
   summed down to the separator.  Each is a :class:`.contraction.Contraction`: a pairwise path
   chosen by opt_einsum at compile time, run with kernels picked per index pattern
   (stacked matmul / in-place absorb / broadcast outer product).  A clique's full table is
   never built unless the path needs it.
5. **Collect / distribute.**  Messages flow leaves -> root (collect), then root -> the nodes
   that hold targets only (distribute).  Each target goes to the node containing it that is
   cheapest to reach; all targets held by one node are read from a single contraction to their
   joint (for the root, the same joint gives ``log P(e)``).  ``joint(a, b)`` compiles a plan in
   which ``a`` and ``b`` were made adjacent before triangulation, so they share a clique.

Scaling.  Every message is divided, per case, by its sum over the separator; the logs of the
collect-phase divisors plus the log of the mass at each root give ``log P(e)``, and nothing
underflows however many findings are observed.  An impossible case gets zero messages: its
divisors are left at one, ``log_evidence`` is ``-inf``, ``possible`` is False and its marginal
rows are NaN; other cases of the batch are unaffected.

Chunking.  Cases are processed in chunks sized so that the largest intermediate of a chunk
stays under ``max_elements`` (default 2**20 float64 = 8 MB, which also keeps arrays near the
cache), at most ``max_chunk`` cases.  Batches of 64+ cases run with BLAS pinned to one thread
(threadpoolctl): the products are small and many, and OpenBLAS threads only add contention.
"""

from .api import InferenceEngine
from .core import DEFAULT_MAX_CHUNK, DEFAULT_MAX_ELEMENTS, EngineResult, JunctionTreeEngine

__all__ = ["InferenceEngine", "JunctionTreeEngine", "EngineResult", "DEFAULT_MAX_CHUNK", "DEFAULT_MAX_ELEMENTS"]
