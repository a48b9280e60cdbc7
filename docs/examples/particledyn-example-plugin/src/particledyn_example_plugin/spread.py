"""The example kernel and observer: the cloud's spread about its mean.

Loss L = (s - R2)^2 / 4 with s = sum_j m_j |x_j - mu|^2 the mass-weighted mean square
distance to the mean mu (masses sum to 1); the field per unit mass is
-dL/dx_i / m_i = (R2 - s) (x_i - mu), written in the DeepSets form (phi, rho, psi).
"""

import numpy as np

from particledyn import DeepSetsKernel, Observer


def spread_kernel(dim: int, radius2: float) -> DeepSetsKernel:
    """A :class:`~particledyn.DeepSetsKernel` moving the particles radially until s = ``radius2``.

    Parameters
    ----------
    dim : int
        Particle dimension D.
    radius2 : float
        Target mean square distance R2 to the mean.
    """

    def phi(x, ctx, out):  # each particle contributes x and |x|^2
        out[dim] = 0.0
        for k in range(dim):
            out[k] = x[k]
            out[dim] += x[k] * x[k]

    def rho(total, ctx):  # once per step: the mean and R2 - s
        mean = total[:dim]
        return np.append(mean, radius2 - (total[dim] - mean @ mean))

    def psi(x, summary, ctx, out):
        for k in range(dim):
            out[k] = (x[k] - summary[k]) * summary[dim]

    def loss(positions, masses, ctx):
        mean = masses @ positions
        spread = masses @ np.sum((positions - mean) ** 2, axis=1)
        return 0.25 * (spread - radius2) ** 2

    return DeepSetsKernel(phi, psi, dim=dim, agg_dim=dim + 1, rho=rho, loss=loss, name="example_spread")


class RadiusObserver(Observer):
    """Records ``radius``, the p-mean distance (sum_i m_i |x_i - mu|^p)^(1/p) to the mean mu.

    Parameters
    ----------
    every : int
        Cadence in steps.
    p : float
        Order of the mean (2: the root mean square distance).
    """

    name = "example_radius"

    def __init__(self, every: int = 1, p: float = 2.0):
        super().__init__(every)
        self.p = float(p)

    def observe(self, info):
        x, m = info.positions, info.masses / info.masses.sum()
        distance = np.linalg.norm(x - m @ x, axis=1)
        return {"radius": float((m @ distance**self.p) ** (1.0 / self.p))}
