"""A-priori Lipschitz constants of the two-layer network's update, from its per-neuron Jacobian.

For the built-in two-layer net (``particledyn.kernels.TwoLayerNet``) under gradient descent the
update of neuron i is ``U_i = -grad phi(x_i)`` with one shared per-step potential

    phi(w, a) = sum_b (G_b . a) sigma(w . z_b),      G = dL/dF (B, C) at the step's batch,

in both scalings (the mean-field field is the gradient per unit mass). Two neurons see the same
G, so ``U_i - U_j = grad phi(x_j) - grad phi(x_i)`` and the mean-value theorem gives Lemma 4
with K = the sup of ``||Hess phi||_2`` over the segment [x_i, x_j]. The per-neuron block is

    Hess phi = [[sum_b (G_b . a) sigma''_b z_b z_b^T,  sum_b sigma'_b z_b G_b^T],
                [sum_b sigma'_b G_b z_b^T,             0                      ]].

Two numbers come out, neither read off the pairs being checked:

* :func:`lipschitz_bound` -- certified on the convex hull of the cloud: with |sigma'| <= s1,
  |sigma''| <= s2, |a| <= max_i |a_i| (a norm is convex, so this holds on every segment),
  ``||A|| <= alpha = max|a| s2 ||Z^T diag(|G_b|) Z||`` and ``||B|| <= beta = s1 ||Z|| ||G||``,
  so ``||Hess phi|| <= (alpha + sqrt(alpha^2 + 4 beta^2)) / 2``. ReLU has no such bound (sigma'
  jumps: the update is not Lipschitz) and gets ``inf``.
* :func:`jacobian_sup` -- the exact block's spectral norm, maximised over the cloud's points: an
  estimate (not a sup over segments), tighter than the bound.

Both describe the plain gradient step; momentum and Adam add state and are refused.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "ACTIVATION_DERIVATIVE_BOUNDS",
    "output_gradient",
    "per_neuron_jacobians",
    "jacobian_sup",
    "lipschitz_bound",
    "step_lipschitz",
    "APRIORI_KINDS",
]

#: sup |sigma'| and sup |sigma''| per activation (ReLU: sigma' is discontinuous).
ACTIVATION_DERIVATIVE_BOUNDS = {
    "sigmoid": (0.25, 1.0 / (6.0 * math.sqrt(3.0))),
    "tanh": (1.0, 4.0 / (3.0 * math.sqrt(3.0))),
    "relu": (1.0, math.inf),
}
#: The a-priori K kinds :func:`step_lipschitz` computes.
APRIORI_KINDS = ("apriori", "jacobian_sup")
_GD_OPTIMIZERS = ("gd", "sgd")
_EXACT_MAX_DIM = 64  # exact per-neuron spectral norms up to this particle dimension
_CHUNK = 1 << 20  # floats per (neurons x batch) chunk


def _split(positions, inputs, G):
    X = np.asarray(positions, dtype=np.float64)
    Z = np.asarray(inputs, dtype=np.float64)
    G = np.asarray(G, dtype=np.float64)
    if G.ndim == 1:
        G = G[:, None]
    d = Z.shape[1]
    if X.ndim != 2 or X.shape[1] != d + G.shape[1] or G.shape[0] != Z.shape[0]:
        raise ValueError(
            f"positions {X.shape}, inputs {Z.shape}, G {G.shape}: expected (N, d + C), (B, d) and (B, C)"
        )
    return X[:, :d], X[:, d:], Z, G


def _derivatives(activation, t):
    from particledyn.kernels.activations_reference import activation_reference

    return activation_reference(activation, t)


def per_neuron_jacobians(positions, inputs, G, activation: str) -> np.ndarray:
    """The per-neuron blocks ``Hess phi(x_i)`` (see the module notes), shape (N, D, D).

    Parameters
    ----------
    positions : ndarray, shape (N, d + C)
        Neurons (w_i, a_i).
    inputs : ndarray, shape (B, d)
        The step's batch z_b.
    G : ndarray, shape (B, C) or (B,)
        dL/dF at that batch.
    activation : {'sigmoid', 'tanh', 'relu'}

    Returns
    -------
    ndarray, shape (N, D, D)
    """
    W, A, Z, G = _split(positions, inputs, G)
    n, d, c = len(W), Z.shape[1], G.shape[1]
    out = np.zeros((n, d + c, d + c))
    step = max(1, _CHUNK // max(1, Z.shape[0]))
    for lo in range(0, n, step):
        sl = slice(lo, lo + step)
        _, ds, dds = _derivatives(activation, W[sl] @ Z.T)
        weight = (A[sl] @ G.T) * dds
        out[sl, :d, :d] = np.einsum("nb,bi,bj->nij", weight, Z, Z)
        cross = np.einsum("nb,bi,bc->nic", ds, Z, G)
        out[sl, :d, d:] = cross
        out[sl, d:, :d] = np.swapaxes(cross, 1, 2)
    return out


def jacobian_sup(positions, inputs, G, activation: str) -> tuple[float, int]:
    """Largest spectral norm of the per-neuron block over the cloud's points, and its neuron.

    An estimate of K, not a certified bound (the mean-value theorem needs the sup over segments).
    Particle dimensions above 64 are refused (one SVD per neuron would dominate the step).
    """
    X = np.asarray(positions)
    if X.ndim == 2 and X.shape[1] > _EXACT_MAX_DIM:
        raise ValueError(
            f"particle dimension {X.shape[1]}: jacobian_sup expects at most "
            f"{_EXACT_MAX_DIM}; use the certified lipschitz_bound"
        )
    norms = np.linalg.norm(per_neuron_jacobians(positions, inputs, G, activation), ord=2, axis=(1, 2))
    best = int(np.argmax(norms)) if len(norms) else -1
    return (float(norms[best]) if best >= 0 else 0.0), best


def lipschitz_bound(positions, inputs, G, activation: str) -> float:
    """Certified Lipschitz constant of ``x -> grad phi(x)`` on the convex hull of the cloud.

    Parameters
    ----------
    positions, inputs, G, activation
        As :func:`per_neuron_jacobians`.

    Returns
    -------
    float
        ``(alpha + sqrt(alpha^2 + 4 beta^2)) / 2`` (module notes); ``inf`` for ReLU.
    """
    if activation not in ACTIVATION_DERIVATIVE_BOUNDS:
        raise ValueError(f"activation={activation!r}: expected one of {tuple(ACTIVATION_DERIVATIVE_BOUNDS)}")
    s1, s2 = ACTIVATION_DERIVATIVE_BOUNDS[activation]
    if not math.isfinite(s2):
        return math.inf
    _, A, Z, G = _split(positions, inputs, G)
    a_max = float(np.linalg.norm(A, axis=1).max()) if len(A) else 0.0
    weights = np.linalg.norm(G, axis=1)
    alpha = a_max * s2 * float(np.linalg.eigvalsh((Z * weights[:, None]).T @ Z)[-1])
    beta = s1 * float(np.linalg.norm(Z, 2)) * float(np.linalg.norm(G, 2))
    return 0.5 * (alpha + math.sqrt(alpha * alpha + 4.0 * beta * beta))


def output_gradient(kernel, positions, masses, context) -> np.ndarray:
    """G = dL/dF (B, C) of a two-layer kernel at ``positions`` on the batch ``context``."""
    from particledyn.kernels.two_layer_reference import loss_and_output_gradient

    inputs, targets = context
    outputs = kernel.outputs(np.asarray(positions), masses, inputs)
    return loss_and_output_gradient(outputs, targets, kernel.loss_name)[1]


def step_lipschitz(info, kind: str) -> float:
    """The a-priori K of the step x(t-1) -> x(t) that ``info`` describes.

    Parameters
    ----------
    info : particledyn.observers.StepInfo
        With ``previous_positions`` and the running ``simulation`` (a two-layer kernel under
        GD or SGD).
    kind : {'apriori', 'jacobian_sup'}

    Returns
    -------
    float
    """
    if kind not in APRIORI_KINDS:
        raise ValueError(f"kind={kind!r}: expected one of {APRIORI_KINDS}")
    sim = info.simulation
    check_applicable(sim, kind)
    kernel = sim.kernel
    inputs, _ = context = sim.context(info.step - 1)
    X = np.asarray(info.previous_positions, dtype=np.float64)
    G = output_gradient(kernel, X, info.masses, context)
    if kind == "apriori":
        return lipschitz_bound(X, inputs, G, kernel.activation)
    return jacobian_sup(X, inputs, G, kernel.activation)[0]


def check_applicable(simulation, kind: str) -> None:
    """Raise a one-line ValueError unless ``simulation`` is a two-layer net under GD/SGD."""
    if simulation is None:
        raise ValueError(f"K={kind!r} needs the running simulation (StepInfo.simulation is None)")
    kernel, optimizer = simulation.kernel, simulation.optimizer
    if not all(hasattr(kernel, a) for a in ("outputs", "activation", "loss_name", "d_in")):
        raise ValueError(
            f"K={kind!r} on kernel {getattr(kernel, 'name', kernel)!r}: expected the "
            "built-in two-layer net (the analytic per-neuron Jacobian)"
        )
    if kind == "apriori" and not math.isfinite(
        ACTIVATION_DERIVATIVE_BOUNDS.get(kernel.activation, (0, math.inf))[1]
    ):
        raise ValueError(
            f"K='apriori' with activation {kernel.activation!r}: expected a smooth "
            "activation (sigmoid, tanh); ReLU's update is not Lipschitz (sigma' jumps)"
        )
    if optimizer.name not in _GD_OPTIMIZERS:
        raise ValueError(
            f"K={kind!r} with optimizer {optimizer.name!r}: expected 'gd' or 'sgd' "
            "(momentum and Adam updates carry state the Jacobian bound ignores)"
        )
