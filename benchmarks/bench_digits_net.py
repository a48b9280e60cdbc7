"""The digits classifier's kernel calls at the authors' shapes, beside numpy, at 1 and 2 threads.

Shapes of ``scenarios/authors/authors_digits_*.toml``: N = 1024 neurons, d = 64 inputs, C = 10
classes, B = 1437 training rows (the loss observer and the Lanczos sharpness use all of them).
Timed, as medians of ``--repeats`` calls after a warm-up (numba compilation), in CPU and wall
milliseconds: the wide forward pass (``two_layer_wide_numba.forward``, through ``outputs``) beside
numpy's ``sigmoid(Z W^T) (coef a)`` and beside the matrix product ``Z W^T`` alone; the field; one
exact Hessian-vector product of the cached operator (numpy / BLAS); the loss. Threads are set as a
run sets them (:func:`particledyn.runner.set_threads`: numba and BLAS), so each line at 2 threads
is the same call with a second thread for both.

Usage::

    python benchmarks/bench_digits_net.py --threads 1 2
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from particledyn.kernels import TwoLayerNet
from particledyn.runner import set_threads


def median_ms(f, repeats: int) -> tuple[float, float]:
    """Median (wall, CPU) milliseconds of ``f()`` over ``repeats`` calls after one warm-up call."""
    f()
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        f()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return 1e3 * float(np.median(wall)), 1e3 * float(np.median(cpu))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    n, d, c, b = 1024, 64, 10, 1437
    inputs = rng.standard_normal((b, d))
    labels = rng.integers(0, c, size=b)
    kernel = TwoLayerNet(inputs, labels, "sigmoid", "cross_entropy", "standard", n_outputs=c)
    x = 0.1 * rng.standard_normal((n, d + c))
    m = np.full(n, 1.0 / n)
    context = (inputs, labels)
    operator = kernel.hvp_operator(x, m, context)
    v = rng.standard_normal(x.shape)
    calls = {
        "forward (wide numba loops)": lambda: kernel.outputs(x, m, inputs),
        "  peer: numpy sigmoid(Z W^T) a": lambda: (1 / (1 + np.exp(-(inputs @ x[:, :d].T)))) @ x[:, d:],
        "  peer: numpy Z W^T alone": lambda: inputs @ x[:, :d].T,
        "field": lambda: kernel.field(x, m, context),
        "Hessian-vector product": lambda: operator(v),
        "loss": lambda: kernel.loss(x, m, context),
    }
    for threads in args.threads:
        set_threads(threads)
        print(f"threads {threads} (numba and BLAS), load average {os.getloadavg()}")
        for label, f in calls.items():
            wall, cpu = median_ms(f, args.repeats)
            print(f"  {label:34s} {cpu:8.1f} ms CPU {wall:8.1f} ms wall")


if __name__ == "__main__":
    main()
