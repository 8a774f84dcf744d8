"""Compiled, batched, exact inference for discrete Bayesian networks.

The engine answers, for a batch of ``N`` cases at once, the posterior marginals of a set of
target variables and the log-probability of each case's evidence.  It knows nothing about any
particular domain: it takes a network as plain tables (``InferenceEngine(variables, cards,
parents, tables)``) or converts a pgmpy ``DiscreteBayesianNetwork`` (``from_pgmpy``).  pgmpy is
not used at run time.

Modules: :mod:`.api` (``InferenceEngine``: support merge, then the junction tree),
:mod:`.support` (merging near-deterministic structure), :mod:`.forest` (pruning, leaf
findings, triangulation via :mod:`.triangulate`, rooting), :mod:`.blocks` (leaf findings
absorbed per node), :mod:`.contraction` (batched numpy kernels and their path search),
:mod:`.plan` (batched plans), :mod:`.core` (plan cache, propagation, chunking, threads,
public API) and :mod:`.single` (plans for one case).  The design, with measured figures, is described in ``docs/engine.md``.

Evidence as likelihoods
-----------------------
Every finding is a *likelihood vector* ``L_v`` over the states of ``v``: a one-hot row is hard
evidence, any non-negative row is soft (virtual) evidence, and an all-ones row means "not
observed".  Because a case-specific missing finding is just an all-ones row, all cases of a
batch share one compiled plan whatever subset of findings each case observes.
``P(e) = sum_x P(x) prod_v L_v(x_v)``.

Algorithm: Shafer-Shenoy propagation on a junction forest, batch axis last
--------------------------------------------------------------------------
A *plan* is compiled once per (set of variables carrying likelihoods, targets) and cached:

1. **Pruning.**  Only ancestors of evidence and targets matter; other nodes are barren.
   Likelihoods that are all ones in every case are dropped before the plan is looked up.
2. **Leaf findings.**  Evidence variables with no children left (and not targets) stay out of
   the tree: their parents are married, and the findings held by one node are absorbed as
   *blocks* (:mod:`.blocks`): a few findings as direct products of table columns, many as one
   matrix product in log space (``X @ log W``), shifted per case before ``exp``.
3. **Triangulation and junction forest** of the remaining *core* (min-fill / min-weight, the
   order with the smallest total clique size; cliques contained in a neighbour merged), each
   tree rooted at the node holding most targets; busy nodes get factor-free helper nodes.
4. **Messages as contractions** (:class:`.contraction.Contraction`): per-case arrays are laid
   out ``(*states, N)``, so numpy's inner loops run along the cases; the pairwise order is
   chosen by dynamic programming over subsets with a cost model of the kernels (BLAS gemm for
   a static table times a per-case array, ``numpy.einsum`` for products with a sum, broadcast
   products otherwise); products of static tables are computed at compile time.
5. **Collect / distribute**: leaves to roots, then roots to the nodes holding targets; targets
   held by one node are read from one joint, which at a root also gives ``log P(e)``.
   ``joint(a, b)`` compiles a plan in which ``a`` and ``b`` share a clique.

One case (``N == 1``) runs on a :class:`.single.SingleCasePlan` instead: one dense potential
per node (static tables x ``exp`` of the node's evidence rows), evidence-free parts computed at
compile time, about 0.13 ms on the default network (0.21 ms per query in all).

Scaling.  When no per-case input exceeds 1 messages are not rescaled; a chunk in which a
case's mass falls below 1e-250 (deep underflow, or impossible evidence) is run again with
every message divided per case by its total, whose logs go into ``log P(e)``.  Nothing
underflows however many findings are observed.  An impossible case gets ``log_evidence``
``-inf``, ``possible`` False and NaN marginal rows; other cases are unaffected.

Chunking and threads.  Cases run in chunks sized so that the largest intermediate of a chunk
stays under ``max_elements`` (default 2**18 float64 = 2 MB, near the cache), on a shared pool
of ``threads`` workers (default: the cores the process may use, at most 4; numpy releases the
GIL in its loops), with BLAS pinned to one thread (threadpoolctl): the products are small and
many, and idle OpenBLAS threads spin on the other core.
"""

from .api import InferenceEngine
from .core import DEFAULT_MAX_CHUNK, DEFAULT_MAX_ELEMENTS, EngineResult, JunctionTreeEngine

__all__ = ["InferenceEngine", "JunctionTreeEngine", "EngineResult", "DEFAULT_MAX_CHUNK", "DEFAULT_MAX_ELEMENTS"]
