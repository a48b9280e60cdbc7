"""The paper authors' model, loss and training loop, written here in PyTorch for the equality tests.

Written from reading their code (GitHub YYY-Experiments/Topological-Invariance-and-Breakdown-in-Learning,
MIT: ``low-dim/models/mlp.py``, ``low-dim/train_and_test.py``, ``low-dim/optimizers.py`` and their
``high-dim`` counterparts), not copied: a bias-free ``Linear(d, H)`` -> sigmoid -> bias-free
``Linear(H, C)``, ``F.mse_loss`` (mean, no 1/2) on the teacher and ``F.cross_entropy`` on images,
and ``torch.optim`` SGD, SGD(momentum=0.9) or Adam with its defaults, ``zero_grad`` /
``backward`` / ``step`` once per batch. The batches are handed in (the authors' DataLoader draws
them from torch's generator; here they come from particledyn's epoch permutation), so both sides
see the same rows in the same order.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class AuthorsMLP(nn.Module):
    """Linear(d, H, bias=False) -> sigmoid -> Linear(H, C, bias=False), as in the authors' code."""

    def __init__(self, d: int, hidden: int, classes: int, dtype):
        super().__init__()
        self.ln = nn.Linear(d, hidden, bias=False, dtype=dtype)
        self.out = nn.Linear(hidden, classes, bias=False, dtype=dtype)

    def forward(self, x):
        return self.out(torch.sigmoid(self.ln(x)))

    def neurons(self) -> np.ndarray:
        """Particle i = (incoming weights of hidden unit i, its outgoing weights)."""
        return torch.cat([self.ln.weight, self.out.weight.t()], dim=1).detach().numpy()


def authors_optimizer(name: str, model: nn.Module, lr: float, weight_decay: float):
    """The authors' get_optimizer: 'SGD', 'momentum' (0.9) or 'adam' (PyTorch's defaults)."""
    params = model.parameters()
    if name == "SGD":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=0.9)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer {name!r}: expected 'SGD', 'momentum' or 'adam'")


def authors_train(
    start: np.ndarray,
    inputs: np.ndarray,
    targets: np.ndarray,
    loss: str,
    optimizer: str,
    lr: float,
    weight_decay: float,
    batches,
    steps: int,
    dtype=torch.float64,
):
    """Train the authors' network from the neurons ``start`` (N, d + C) for ``steps`` batches.

    ``batches(step)`` gives the row indices of each step's batch. Yields the neurons after
    every step, as an (N, d + C) array.
    """
    d = inputs.shape[1]
    classes = start.shape[1] - d
    model = AuthorsMLP(d, start.shape[0], classes, dtype)
    with torch.no_grad():
        model.ln.weight.copy_(torch.from_numpy(start[:, :d]))
        model.out.weight.copy_(torch.from_numpy(start[:, d:].T.copy()))
    optim = authors_optimizer(optimizer, model, lr, weight_decay)
    x_all = torch.from_numpy(inputs).to(dtype)
    if loss == "mse":
        y_all = torch.from_numpy(targets.reshape(len(targets), -1)).to(dtype)
    else:
        y_all = torch.from_numpy(targets).long()
    for step in range(steps):
        rows = torch.from_numpy(np.asarray(batches(step)))
        preds = model(x_all[rows])
        value = F.mse_loss(preds, y_all[rows]) if loss == "mse" else F.cross_entropy(preds, y_all[rows])
        optim.zero_grad()
        value.backward()
        optim.step()
        yield model.neurons()


def authors_sharpness(
    neurons: np.ndarray,
    test_inputs: np.ndarray,
    test_labels: np.ndarray,
    batch_size: int,
    start: np.ndarray,
    steps: int = 20,
    threshold: float = 1e-4,
) -> float:
    """K as the authors' ``high-dim/sharpness.py`` gets it from ``hessian_eigenthings``
    (``mode="power_iter"``, ``full_dataset=False``), written here from reading that library: a
    power iteration whose step i takes the Hessian-vector product (double backward of
    ``F.cross_entropy``) on batch ``i mod b`` of a non-shuffling test loader, from ``start``
    (torch's parameter order: the first layer's weight row-major, then the output layer's),
    stopping at a relative change below ``threshold``. Returns the last estimate ``v . H v``.
    """
    dtype = torch.float64
    d = test_inputs.shape[1]
    model = AuthorsMLP(d, neurons.shape[0], neurons.shape[1] - d, dtype)
    with torch.no_grad():
        model.ln.weight.copy_(torch.from_numpy(neurons[:, :d]))
        model.out.weight.copy_(torch.from_numpy(neurons[:, d:].T.copy()))
    params = list(model.parameters())
    x_all = torch.from_numpy(test_inputs).to(dtype)
    y_all = torch.from_numpy(test_labels).long()
    batches = [
        (x_all[s : s + batch_size], y_all[s : s + batch_size]) for s in range(0, len(x_all), batch_size)
    ]
    vec = torch.from_numpy(start).to(dtype)
    previous, estimate = 0.0, 0.0
    for i in range(steps):
        x, y = batches[i % len(batches)]
        grads = torch.autograd.grad(F.cross_entropy(model(x), y), params, create_graph=True)
        flat = torch.cat([g.reshape(-1) for g in grads])
        product = torch.cat([h.reshape(-1) for h in torch.autograd.grad(flat, params, grad_outputs=vec)])
        estimate = float(vec @ product)
        error = 1.0 if estimate == 0.0 else abs((estimate - previous) / estimate)
        vec = product.detach() / torch.linalg.norm(product)
        if error < threshold:
            break
        previous = estimate
    return estimate


def torch_order(flat: np.ndarray, n: int, d: int) -> np.ndarray:
    """A flat vector over particledyn's neurons (N, d + C), row-major, in torch's parameter order."""
    neurons = flat.reshape(n, -1)
    return np.concatenate([neurons[:, :d].ravel(), neurons[:, d:].T.ravel()])
