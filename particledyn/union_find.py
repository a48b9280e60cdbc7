"""Union-find's ``find`` for numba kernels: the one copy the neighbour search and the alpha
persistence share."""

import numba


@numba.njit(cache=True, inline="always")
def find(parent, x):
    """Root of ``x`` in the forest ``parent`` (int array), halving the path on the way."""
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x
