"""Mini-batches drawn epoch by epoch, as PyTorch's ``DataLoader(shuffle=True)`` draws them.

The default batch of a :class:`~particledyn.kernel.SupervisedKernel` is a fresh draw
without replacement at every step. The paper's code (GitHub
YYY-Experiments/Topological-Invariance-and-Breakdown-in-Learning, ``*/main.py``) instead
shuffles the training set once per epoch and walks through it in consecutive batches,
the last one short: 3500 rows in batches of 128 are 28 steps per epoch, the 28th of 44
rows. :class:`EpochBatches` does the same with its own generator: the permutation of
epoch ``e`` derives from ``(seed, e)`` only, so step ``t`` always sees the same rows and a
resumed run stays bit-identical. (PyTorch's generator is not reproduced: the rows of a
batch match a DataLoader's only when it is handed the same permutation.)
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["EpochBatches", "steps_per_epoch"]

# Third entry of the epoch seed, so that (seed, epoch) never collides with the
# per-step stream (seed, step) of particledyn.state.step_rng.
_EPOCH_STREAM = 1


def steps_per_epoch(n_rows: int, batch_size: int) -> int:
    """Number of batches in one pass over ``n_rows`` rows: ceil(n_rows / batch_size)."""
    return -(-int(n_rows) // int(batch_size))


class EpochBatches:
    """Row indices of the step-t batch: a permutation per epoch, consecutive slices of it.

    Parameters
    ----------
    n_rows : int
        Rows of the training set, >= 1.
    batch_size : int
        Rows per batch, >= 1 (the last batch of an epoch holds the remainder).
    seed : int
        Root seed, >= 0.
    """

    def __init__(self, n_rows: int, batch_size: int, seed: int):
        for name, value, low in (("n_rows", n_rows, 1), ("batch_size", batch_size, 1), ("seed", seed, 0)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise ValueError(f"{name}={value!r}: expected an integer >= {low}")
        self.n_rows, self.batch_size, self.seed = int(n_rows), int(batch_size), int(seed)
        self.steps_per_epoch = steps_per_epoch(self.n_rows, self.batch_size)
        self._cached: tuple[int, np.ndarray] | None = None  # (epoch, its permutation)

    def permutation(self, epoch: int) -> np.ndarray:
        """The order of the rows in ``epoch`` (0-based), from (seed, epoch) only."""
        if self._cached is None or self._cached[0] != epoch:
            ss = np.random.SeedSequence([self.seed, int(epoch), _EPOCH_STREAM])
            self._cached = (epoch, np.random.default_rng(ss).permutation(self.n_rows))
        return self._cached[1]

    def indices(self, step: int) -> np.ndarray:
        """Rows of the batch of update ``step`` (0-based), in the permutation's order."""
        epoch, slot = divmod(int(step), self.steps_per_epoch)
        return self.permutation(epoch)[slot * self.batch_size : (slot + 1) * self.batch_size]

    def describe(self) -> dict:
        return {"sampling": "epoch", "batch_size": self.batch_size, "steps_per_epoch": self.steps_per_epoch}
