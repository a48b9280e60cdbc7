"""Continual learning (the paper's Figure 14, Appendix C.3): a two-layer net whose task changes.

Task ``k`` is the random linear teacher :func:`particledyn.data.linear_teacher_task`
``(first_task + k, seed)``: fresh Gaussian inputs in R^d_in, targets ``z @ M_k.T`` in
R^d_out. Update ``step`` trains on task ``first_task + step // epoch_steps``, so the
teacher and the data are resampled every ``epoch_steps`` steps (one epoch). A task is
a pure function of (seed, task index), so any step's batch can be regenerated and a
resumed run sees exactly the same data.

With ``hidden_bias`` the student sees one more input, a constant 1, so each neuron carries
its hidden bias as a coordinate (PyTorch's ``nn.Linear`` default); the teacher does not.

The field on a task is :class:`~particledyn.kernels.TwoLayerNet`'s (MSE loss), so it is
permutation-equivariant and shares that kernel's numba loops and numpy reference.
Diagnostics (:meth:`evaluation_context`, :meth:`test_loss`) use the task of the last
update drawn by :meth:`context`: the loss observer at step ``t`` reports the task that
update ``t - 1`` trained on.
"""

from __future__ import annotations

import numbers

import numpy as np

from particledyn.kernel import Kernel

from .two_layer import TwoLayerNet


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name}={value!r}: expected an integer >= 1")
    return int(value)


class TaskSwitchingNet(Kernel):
    """Two-layer net (MSE) on a sequence of random linear tasks, one task per epoch.

    Parameters
    ----------
    epoch_steps : int
        Updates per task (one epoch); >= 1.
    d_in, d_out : int
        Input and output dimensions (the paper: 8 and 8); D = d_in + d_out.
    n_train, n_eval : int
        Training and evaluation samples per task (the paper: 50000 and 10000).
    seed : int
        Seed of the task sequence.
    first_task : int
        Index of the task trained at step 0 (the paper's task 0 is a warm-up).
    activation : {"sigmoid", "tanh", "relu"}
    scaling : {"standard", "mean_field"}
        As :class:`~particledyn.kernels.TwoLayerNet`.
    hidden_bias : bool
        Append a constant input 1 (a bias coordinate per neuron): D = d_in + 1 + d_out.
    """

    thread_invariant = True  # sums over fixed chunks in a fixed order

    def __init__(
        self,
        epoch_steps,
        d_in=8,
        d_out=8,
        n_train=50000,
        n_eval=10000,
        seed=0,
        first_task=0,
        activation="sigmoid",
        scaling="standard",
        hidden_bias=False,
    ):
        self.epoch_steps = _positive_int(epoch_steps, "epoch_steps")
        self.d_in, self.d_out = _positive_int(d_in, "d_in"), _positive_int(d_out, "d_out")
        self.n_train, self.n_eval = _positive_int(n_train, "n_train"), _positive_int(n_eval, "n_eval")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"seed={seed!r}: expected an integer >= 0")
        if isinstance(first_task, bool) or not isinstance(first_task, numbers.Integral) or first_task < 0:
            raise ValueError(f"first_task={first_task!r}: expected an integer >= 0")
        self.seed, self.first_task = int(seed), int(first_task)
        self.activation, self.scaling = activation, scaling
        self.hidden_bias = bool(hidden_bias)
        self.dim = self.d_in + self.hidden_bias + self.d_out
        self.n_outputs = self.d_out
        self.name = f"task_switching_{activation}"
        self._net: TwoLayerNet | None = None
        self._task = -1
        self.current_task = self.first_task
        self._load(self.first_task)  # checks activation and scaling now

    # -- tasks -------------------------------------------------------------------
    def task_of_step(self, step: int) -> int:
        """Index of the task update ``step`` trains on."""
        return self.first_task + int(step) // self.epoch_steps

    def task_network(self, task: int) -> TwoLayerNet:
        """The two-layer net on task ``task`` (its training and evaluation data)."""
        from particledyn.data import linear_teacher_task

        data = linear_teacher_task(task, self.d_in, self.d_out, self.n_train, self.n_eval, self.seed)
        z_train, z_test = data.z_train, data.z_test
        if self.hidden_bias:
            z_train = np.hstack([z_train, np.ones((len(z_train), 1))])
            z_test = np.hstack([z_test, np.ones((len(z_test), 1))])
        return TwoLayerNet(
            z_train,
            data.y_train,
            activation=self.activation,
            loss="mse",
            scaling=self.scaling,
            test_inputs=z_test,
            test_targets=data.y_test,
        )

    def _load(self, task: int) -> TwoLayerNet:
        if self._net is None or task != self._task:
            self._net, self._task = self.task_network(task), task
        self.current_task = task
        return self._net

    @property
    def test_inputs(self):
        return self._load(self.current_task).test_inputs

    # -- kernel protocol -----------------------------------------------------------
    def context(self, step, rng, batch_size):
        """Mini-batch of the task of ``step``: (inputs, targets)."""
        return self._load(self.task_of_step(step)).context(step, rng, batch_size)

    def evaluation_context(self):
        """Full training set of the current task."""
        return self._load(self.current_task).evaluation_context()

    def field(self, positions, masses, context):
        return self._load(self.current_task).field(positions, masses, context)

    def loss(self, positions, masses, context):
        return self._load(self.current_task).loss(positions, masses, context)

    def test_loss(self, positions, masses):
        """MSE on the current task's evaluation samples."""
        return self._load(self.current_task).test_loss(positions, masses)

    def hvp(self, positions, masses, context, vector, chunk=4096):
        return self._load(self.current_task).hvp(positions, masses, context, vector, chunk)

    def describe(self):
        return {
            "name": self.name,
            "dim": self.dim,
            "activation": self.activation,
            "loss": "mse",
            "scaling": self.scaling,
            "epoch_steps": self.epoch_steps,
            "d_in": self.d_in,
            "d_out": self.d_out,
            "hidden_bias": self.hidden_bias,
            "n_train": self.n_train,
            "n_eval": self.n_eval,
            "seed": self.seed,
            "first_task": self.first_task,
        }
