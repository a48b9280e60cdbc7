"""How far the authors' 20 power iterations are from the exact top eigenvalue, run by run.

For every frame of a run file (or of each replica of an ensemble file) that has the
``sharpness_authors`` observer (``method = "power_iter"``, ``on = "test"``), Lanczos to 1e-10 on
the test-set Hessian of the same batches gives the exact dominant eigenvalue (largest magnitude,
what a power iteration converges to); printed: the relative gap (exact - power) / exact per
record, as the median and the largest over the records, and how often the 1e-4 test stopped the
iteration before 20 steps. With more than one test batch the power value mixes batches and the
"exact" value is the full test set's, so the gap also holds the batch-to-batch spread.

    python scenarios/power_iter_gap.py runs/gd_small.h5 ...
"""

import argparse
import sys

import numpy as np

from particledyn.data import dataset_spec, make_dataset
from particledyn.geometry.sharpness import top_eigenpairs
from particledyn.io import open_run
from particledyn.kernels import TwoLayerNet
from particledyn.runner import recorded_scenario


def gaps(run) -> tuple[np.ndarray, np.ndarray]:
    """Relative gaps and the early-stop flags of one run's ``sharpness_authors`` records (``run``:
    a file, or one replica of an ensemble file, whose own data draw its scenario gives)."""
    resolved = recorded_scenario(run)
    data = make_dataset(dataset_spec(resolved.data.to_dict()))
    kernel = TwoLayerNet(
        data.z_train,
        data.y_train,
        loss=resolved.kernel.loss,
        scaling=resolved.kernel.scaling,
        activation=resolved.kernel.activation,
        n_outputs=int(data.y_train.max()) + 1,
    )
    steps, power = run.observable("sharpness_authors", "lambda_max")
    stopped = np.asarray(run.observable("sharpness_authors", "converged")[1], dtype=bool)
    out = []
    for step, value in zip(steps, power):
        x = np.asarray(run.positions(int(step)), dtype=np.float64)
        product = kernel.hvp_operator(x, np.ones(len(x)), (data.z_test, data.y_test))
        exact = top_eigenpairs(lambda v, p=product: p(v).ravel(), x.size, which="LM", tol=1e-10).lambda_max
        out.append((exact - value) / abs(exact))
    return np.asarray(out), stopped


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    for path in args.files:
        with open_run(path) as run:
            replicas = recorded_scenario(run).run.replicas
            views = [run] if replicas == 1 else [run.replica(r) for r in range(replicas)]
            found = [gaps(v) for v in views]
        gap = np.concatenate([g for g, _ in found])
        stopped = np.concatenate([s for _, s in found])
        print(
            f"{path}: {len(gap)} records; relative gap (exact - power) / exact: median {np.median(gap):.2e}, "
            f"largest {gap.max():.2e}, smallest {gap.min():.2e}; stopped early by the 1e-4 test: "
            f"{int(stopped.sum())} of {len(stopped)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
