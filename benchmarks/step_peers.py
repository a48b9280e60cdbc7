"""The strongest peers of ``bench_step.py``'s step, each a callable ``step()`` on its own copy of the problem.

- ``torch_eager``: the natural PyTorch code with autograd (``bench_step.torch_step``);
- ``torch_fused``: the gradient written out by hand in one function (no autograd, no N x B tensor
  kept between the passes beyond the activations) and compiled with ``torch.compile``;
- ``jax_chunked``: the hand-written gradient as two ``lax.scan`` passes over blocks of
  ``JAX_BLOCK`` particles (never an N x B matrix), jitted, buffers donated.

Every peer returns its new positions as an (N, 3) float64 array from ``positions()`` so that
``bench_step`` can check it computes the same step.
"""

from __future__ import annotations

import numpy as np

JAX_BLOCK = 2000
"""Particles per ``lax.scan`` block of the JAX peer (divides 10^4, 10^5, 10^6)."""


def torch_eager(inputs, targets, positions, lr):
    from bench_step import torch_problem, torch_step

    tensors = torch_problem(inputs, targets, positions)

    def step():
        torch_step(*tensors, lr=lr)

    def result():
        return np.concatenate([tensors[0].detach().numpy(), tensors[1].detach().numpy()[:, None]], axis=1)

    return step, result


def torch_fused(inputs, targets, positions, lr):
    import torch

    dtype = getattr(torch, str(positions.dtype))
    weights = torch.tensor(positions[:, :2], dtype=dtype)
    outer = torch.tensor(positions[:, 2], dtype=dtype)
    z = torch.tensor(inputs, dtype=dtype)
    y = torch.tensor(targets, dtype=dtype)

    @torch.compile(dynamic=False)
    def fused(weights, outer):
        s = torch.sigmoid(z @ weights.T)  # (B, N)
        g = 2.0 * (s @ outer - y) / y.shape[0]  # dL/dF, MSE
        grad_outer = s.T @ g
        grad_weights = (((s * (1.0 - s)) * g[:, None]).T @ z) * outer[:, None]
        weights.sub_(lr * grad_weights)
        outer.sub_(lr * grad_outer)

    def step():
        with torch.no_grad():
            fused(weights, outer)

    def result():
        return np.concatenate([weights.numpy(), outer.numpy()[:, None]], axis=1)

    return step, result


def jax_chunked(inputs, targets, positions, lr):
    import jax
    import jax.numpy as jnp
    from jax import lax

    if positions.dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    n = len(positions)
    block = JAX_BLOCK if n % JAX_BLOCK == 0 else n
    z = jnp.asarray(inputs, dtype=positions.dtype)
    y = jnp.asarray(targets, dtype=positions.dtype)

    def update(w, a):  # w (n_blocks, block, 2), a (n_blocks, block)
        def forward(total, blk):
            wb, ab = blk
            return total + jax.nn.sigmoid(z @ wb.T) @ ab, None

        out, _ = lax.scan(forward, jnp.zeros(z.shape[0], dtype=z.dtype), (w, a))
        g = 2.0 * (out - y) / y.shape[0]

        def field(_, blk):
            wb, ab = blk
            s = jax.nn.sigmoid(z @ wb.T)  # (B, block)
            grad_a = s.T @ g
            grad_w = (((s * (1.0 - s)) * g[:, None]).T @ z) * ab[:, None]
            return None, (wb - lr * grad_w, ab - lr * grad_a)

        _, (w_new, a_new) = lax.scan(field, None, (w, a))
        return w_new, a_new

    compiled = jax.jit(update, donate_argnums=(0, 1))
    state = [
        jnp.asarray(positions[:, :2].reshape(n // block, block, 2)),
        jnp.asarray(positions[:, 2].reshape(n // block, block)),
    ]

    def step():
        state[:] = compiled(*state)
        state[0].block_until_ready()

    def result():
        return np.concatenate(
            [np.asarray(state[0]).reshape(n, 2), np.asarray(state[1]).reshape(n, 1)], axis=1
        )

    return step, result


PEERS = {"PyTorch eager": torch_eager, "torch.compile fused": torch_fused, "JAX lax.scan chunks": jax_chunked}
