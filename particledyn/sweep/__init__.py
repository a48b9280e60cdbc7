"""Sweeps: a grid of learning rates, seeds and N on dask.distributed, the phase diagram,
the infinite-width study and MPI-sharded runs.

- :func:`run_sweep` / :func:`sweep_main`: ``particledyn sweep SWEEP.toml`` (see
  :mod:`particledyn.sweep.grid` for the file, :mod:`particledyn.sweep.executor` for resuming,
  shards of a job array and :func:`collect_sweep`, :mod:`particledyn.sweep.cluster` for where
  the runs execute, :mod:`particledyn.sweep.claims` for the per-run claims);
- :func:`plot_phase_diagram`: topology change and merged mass against eta / eta*;
- :mod:`particledyn.sweep.width`: convergence as N grows, Wasserstein distance between replicas;
- :mod:`particledyn.sweep.mpi`: the benchmark of the MPI-sharded step (runs: :mod:`particledyn.mpi`).
"""

from .executor import SweepResult, collect_sweep, execute_run, run_sweep, sweep_main
from .grid import RunSpec, SweepError, SweepSpec, load_sweep, measure_K0, parse_sweep
from .phase import plot_phase_diagram
from .table import COLUMNS, read_table

__all__ = [
    "SweepResult",
    "collect_sweep",
    "execute_run",
    "run_sweep",
    "sweep_main",
    "RunSpec",
    "SweepError",
    "SweepSpec",
    "load_sweep",
    "measure_K0",
    "parse_sweep",
    "plot_phase_diagram",
    "COLUMNS",
    "read_table",
]
