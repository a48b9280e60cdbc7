"""MPI runs: one scenario with its particles sharded over the ranks of ``mpiexec``.

``mpiexec -n R particledyn run --mpi scenario.toml --out run.h5`` (see ``docs/mpi.md``).
Kernels in DeepSets form only (:mod:`.kernels`); observers sharded or gathered to rank 0
(:mod:`.observers`); one run file written by rank 0 (:mod:`.sink`); checkpoints and exact
resume on the same rank count (:mod:`.run`); signals agreed at step boundaries (:mod:`.signals`).
mpi4py is imported only when a run uses it.
"""

from .comm import agree, gather_rows, rank_order_sum, scatter_rows, shard_bounds
from .kernels import DeepSetsForm, NotShardable, ShardedKernel, deepsets_form

__all__ = [
    "agree",
    "gather_rows",
    "rank_order_sum",
    "scatter_rows",
    "shard_bounds",
    "DeepSetsForm",
    "NotShardable",
    "ShardedKernel",
    "deepsets_form",
]
