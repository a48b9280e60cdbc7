"""Initial neuron clouds: point sets of known topology to start particles on.

The paper initialises neurons ``(w_i, a_i)`` on shapes of known topology (a planar
region with two holes, a genus-2 surface in R^3, two disjoint annuli, a sphere for
MNIST) and then watches whether training keeps that topology. Every generator here
returns an ``(n, dim)`` float64 array and is deterministic for a given seed.

Common conventions of all generators
-------------------------------------
size
    Scale of the shape. For bounded shapes it is the radius of the smallest ball
    about ``center`` that holds the shape: every point satisfies
    ``||x - center|| <= size``, and the bound is attained along the shape's long
    axis. For :func:`gaussian` it is the standard deviation per coordinate.
center
    Translation, a sequence of length ``dim`` (default: the origin).
rotation
    Applied in the shape's native space (R^2 for planar regions, R^3 for surfaces,
    R^{k+1} for S^k) before embedding: ``None`` (no rotation), a float angle in
    radians (native dimension 2 only), a square orthogonal matrix of the native
    dimension, or ``"random"`` for a uniformly random rotation drawn from ``seed``.
dim, embed
    Dimension of the returned points and how the native shape enters R^dim; see
    :func:`embed`. ``dim`` defaults to the native dimension.
seed
    An int >= 0 or a sequence of such ints (what ``np.random.SeedSequence``
    takes). The sample, the random rotation and the random embedding basis come
    from three independent streams spawned from it, so e.g. the embedding subspace
    for a seed does not depend on ``n``.

axis_scale, linear_map (scenario keys; :func:`make_cloud` and :func:`affine` only)
    A linear map of R^dim applied after embedding and before ``center``: per-axis
    factors (``dim`` numbers) or a (dim, dim) matrix. With ``center`` it is an affine
    placement, e.g. the map ``w -> 0.1 w - 2`` of the first coordinate that the paper's
    code applies to every start (``axis_scale = [0.1, 1]``, ``center = [-2, 0]``).

Order of operations: sample the shape at the origin at scale ``size`` -> rotate ->
embed into R^dim -> linear map -> add ``center``.

Blocks, rows, post (every generator and :func:`make_cloud`)
    A cloud is drawn in blocks of :data:`BLOCK` points: block ``b`` (points
    ``[b BLOCK, (b + 1) BLOCK)``) takes its sample from its own stream, child ``b`` of the
    sample stream (block 0: the sample stream itself), rejection-sampled shapes run their
    rejection loop per block, and each block is placed on its own. So ``rows=(lo, hi)``
    builds only the blocks that hold points ``lo..hi-1`` and returns those points,
    bit-identical to the same rows of the whole cloud (what an MPI rank builds of the
    start); ``post``, a map of each block's placed points, is applied block by block before
    the rows are cut out. A cloud of ``n <= BLOCK`` points is one block, drawn exactly as
    before blocks existed; a larger one is another draw of the same distribution than the
    one-piece draw of particledyn before 0.x (its first block aside).

The authors' starts (``figure_eight``, ``two_circles``, ``solid_double_torus``) follow
their code (GitHub YYY-Experiments/Topological-Invariance-and-Breakdown-in-Learning,
``low-dim/models/initializations.py``): they are drawn in the authors' coordinates and
take no ``size``; place them with ``axis_scale`` / ``linear_map`` and ``center``.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any, cast

import numpy as np

__all__ = [
    "embed",
    "random_rotation",
    "genus_region",
    "disjoint_regions",
    "genus_surface",
    "torus",
    "sphere",
    "circle",
    "gaussian",
    "union",
    "figure_eight",
    "two_circles",
    "solid_double_torus",
    "euler_rotation",
    "affine",
    "make_cloud",
    "known_betti",
    "native_dimension",
    "cloud_size",
    "SHAPES",
    "BLOCK",
]

EMBED_RULES = ("first", "random_orthonormal")

#: Points per sampling block (see the module docstring): every start of N <= BLOCK is one block.
BLOCK = 1 << 16

# Unit-frame geometry of the planar genus-g region: a stadium of radius 1 around the
# segment joining the hole centres, holes of radius 0.5, hole centres 2 apart.
_REGION_HOLE_RADIUS = 0.5
_REGION_HOLE_SPACING = 2.0
# Unit-frame geometry of the genus-g surface: g tori (major radius 1, minor 0.5)
# in the xy-plane whose core circles touch, so their union is a genus-g handlebody.
_SURFACE_MAJOR = 1.0
_SURFACE_MINOR = 0.5


# ---------------------------------------------------------------------------
# argument checking and seeds
# ---------------------------------------------------------------------------


def _check_n(n: Any, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or int(n) < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {n!r}")
    return int(n)


def _check_positive(value: Any, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not np.isfinite(float(value))
        or float(value) <= 0
    ):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _check_genus(genus: Any, name: str = "genus") -> int:
    if isinstance(genus, bool) or not isinstance(genus, numbers.Integral) or int(genus) < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {genus!r}")
    return int(genus)


def _seed_sequence(seed: Any) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, bool):
        raise ValueError(f"seed must be an int >= 0 or a sequence of them, got {seed!r}")
    if isinstance(seed, numbers.Integral):
        if int(seed) < 0:
            raise ValueError(f"seed must be an int >= 0 or a sequence of them, got {seed!r}")
        return np.random.SeedSequence(int(seed))
    if (
        isinstance(seed, (list, tuple, np.ndarray))
        and len(seed) > 0
        and all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and int(s) >= 0 for s in seed)
    ):
        return np.random.SeedSequence([int(s) for s in seed])
    raise ValueError(f"seed must be an int >= 0 or a sequence of them, got {seed!r}")


def _streams(seed: Any) -> tuple[np.random.SeedSequence, np.random.SeedSequence, np.random.SeedSequence]:
    """Sample, rotation and embedding seeds, independent of each other."""
    sample_ss, rotation_ss, embed_ss = _seed_sequence(seed).spawn(3)
    return sample_ss, rotation_ss, embed_ss


def _block_rng(sample_ss: np.random.SeedSequence, block: int) -> np.random.Generator:
    """The generator of sampling block ``block``: the sample stream itself for block 0 (so a
    one-block cloud is the one-piece draw), its child ``block`` (spawn key + (block,)) after."""
    if block == 0:
        return np.random.default_rng(sample_ss)
    child = np.random.SeedSequence(sample_ss.entropy, spawn_key=(*sample_ss.spawn_key, int(block)))
    return np.random.default_rng(child)


def _check_rows(n: int, rows: Any) -> tuple[int, int]:
    if rows is None:
        return 0, n
    try:
        lo, hi = (int(r) for r in rows)
    except (TypeError, ValueError):
        raise ValueError(f"rows must be a pair (lo, hi) of ints, got {rows!r}") from None
    if not 0 <= lo < hi <= n:
        raise ValueError(f"rows={rows!r}: expected 0 <= lo < hi <= n = {n}")
    return lo, hi


def _drawn(n: int, seed: Any, rows: Any, post, sample, place) -> np.ndarray:
    """Points ``rows`` of an ``n``-point cloud drawn block by block (module docstring).

    ``sample(rng, start, m)``: the native points ``start..start+m-1`` drawn from ``rng``;
    ``place(native, rotation_seed, embed_seed)``: them placed; ``post``: then mapped.
    """
    lo, hi = _check_rows(n, rows)
    sample_ss, rot_ss, emb_ss = _streams(seed)
    out = None
    for block in range(lo // BLOCK, (hi - 1) // BLOCK + 1):
        a, z = block * BLOCK, min(n, (block + 1) * BLOCK)
        pts = place(sample(_block_rng(sample_ss, block), a, z - a), rot_ss, emb_ss)
        pts = pts if post is None else post(pts)
        i, j = max(lo, a) - a, min(hi, z) - a
        if a <= lo and hi <= z:  # one block holds the rows
            return pts if (i, j) == (0, z - a) else pts[i:j].copy()
        if out is None:  # filled block by block: the rows and one block at a time
            out = np.empty((hi - lo,) + pts.shape[1:], dtype=pts.dtype)
        out[a + i - lo : a + j - lo] = pts[i:j]
    assert out is not None
    return out


def _placer(**placement):
    """``place`` for :func:`_drawn`: :func:`_place` with these keywords."""

    def place(native, rotation_seed, embed_seed):
        return _place(native, rotation_seed=rotation_seed, embed_seed=embed_seed, **placement)

    return place


# ---------------------------------------------------------------------------
# placement: rotation, embedding, translation
# ---------------------------------------------------------------------------


def random_rotation(k: int, seed: Any = 0) -> np.ndarray:
    """Uniformly (Haar) distributed rotation matrix of R^k, determinant +1.

    Parameters
    ----------
    k : int
        Dimension, >= 1.
    seed : int, sequence of int, SeedSequence or Generator
        Anything ``np.random.default_rng`` accepts.

    Returns
    -------
    ndarray, shape (k, k)
    """
    k = _check_n(k, "k")
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((k, k)))
    q = q * np.sign(np.diag(r))  # sign fix makes the QR factor Haar distributed
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _is_euler(rotation: Any) -> bool:
    return (
        isinstance(rotation, (list, tuple))
        and len(rotation) == 3
        and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in rotation)
    )


def euler_rotation(x: float, y: float, z: float) -> np.ndarray:
    """Rotation of R^3 by angles about the fixed x, y and z axes, in that order.

    ``R = Rz(z) @ Ry(y) @ Rx(x)`` (radians), the matrix the paper's code rotates its
    3-D start by (angles (0.6, 0.3, 1.1)). A point ``p`` becomes ``R @ p``.

    Returns
    -------
    ndarray, shape (3, 3)
    """
    for name, value in (("x", x), ("y", y), ("z", z)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise ValueError(f"Euler angle {name} must be a finite number (radians), got {value!r}")
    (cx, sx), (cy, sy), (cz, sz) = ((np.cos(a), np.sin(a)) for a in (float(x), float(y), float(z)))
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]])
    ry = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    rz = np.array([[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]])
    return rz @ ry @ rx


def affine(points: np.ndarray, axis_scale=None, linear_map=None, center=None) -> np.ndarray:
    """``x -> L x + center`` for every point, ``L = diag(axis_scale)`` or ``linear_map``.

    Parameters
    ----------
    points : array_like, shape (n, dim)
    axis_scale : sequence of dim finite numbers, optional
        Per-axis factors.
    linear_map : array_like, shape (dim, dim), optional
        A matrix (not with ``axis_scale``).
    center : sequence of dim finite numbers, optional
        Translation, added last.

    Returns
    -------
    ndarray, shape (n, dim), float64
    """
    out = np.array(points, dtype=np.float64)
    dim = out.shape[1]
    if axis_scale is not None and linear_map is not None:
        raise ValueError("give axis_scale or linear_map, not both")
    if axis_scale is not None:
        out *= _finite_array(axis_scale, (dim,), "axis_scale", f"a sequence of {dim} finite numbers")
    if linear_map is not None:
        out = out @ _finite_array(linear_map, (dim, dim), "linear_map", f"a ({dim}, {dim}) matrix").T
    if center is not None:
        out += _finite_array(
            center, (dim,), "center", f"a sequence of {dim} finite numbers (one per coordinate of dim)"
        )
    return out


def _finite_array(value: Any, shape: tuple, name: str, expected: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {expected}, got {value!r}") from None
    if arr.shape != shape or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return arr


def _rotation_matrix(rotation: Any, k: int, seed: np.random.SeedSequence) -> np.ndarray | None:
    if rotation is None:
        return None
    if isinstance(rotation, str):
        if rotation != "random":
            raise ValueError(
                f"rotation must be None, an angle, a ({k}, {k}) orthogonal matrix or 'random', got {rotation!r}"
            )
        return random_rotation(k, seed)
    if _is_euler(rotation):
        if k != 3:
            raise ValueError(f"rotation given as 3 Euler angles needs a 3-D shape, this shape lives in R^{k}")
        return euler_rotation(*rotation)
    if isinstance(rotation, numbers.Real) and not isinstance(rotation, bool):
        if k != 2:
            raise ValueError(
                f"rotation given as an angle needs a 2-D shape, this shape lives in R^{k}; pass a ({k}, {k}) matrix"
            )
        c, s = np.cos(float(rotation)), np.sin(float(rotation))
        return np.array([[c, -s], [s, c]])
    try:
        mat = np.asarray(rotation, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"rotation must be None, an angle, a ({k}, {k}) orthogonal matrix or 'random', got {rotation!r}"
        ) from None
    if mat.shape != (k, k):
        raise ValueError(f"rotation must be a ({k}, {k}) matrix for this shape, got shape {mat.shape}")
    if not np.allclose(mat @ mat.T, np.eye(k), atol=1e-8):
        raise ValueError("rotation matrix must be orthogonal (R @ R.T == I within 1e-8)")
    return mat


def embed(points: np.ndarray, dim: int, rule: str = "first", seed: Any = 0) -> np.ndarray:
    """Embed k-dimensional points isometrically into R^dim (dim >= k).

    Parameters
    ----------
    points : array_like, shape (n, k)
        Points in their native space.
    dim : int
        Target dimension, >= k.
    rule : {"first", "random_orthonormal"}
        ``"first"``: the point ``p`` becomes ``(p_0, ..., p_{k-1}, 0, ..., 0)``, i.e. the
        shape occupies coordinates ``0..k-1`` and every other coordinate is exactly 0.
        For a two-layer net whose neuron is ``(w_i, a_i)`` this puts the shape in the
        first k input weights. Beware with MNIST: the first pixels (the image border)
        are always 0, so those weights never receive gradient.
        ``"random_orthonormal"``: ``p -> Q p`` with ``Q`` a (dim, k) matrix of orthonormal
        columns spanning a uniformly random k-dimensional subspace (QR of a standard
        Gaussian matrix drawn from ``seed``, signs fixed by ``diag(R) > 0``); every
        coordinate is generically non-zero.
        Both rules are isometries, so pairwise distances (and thus Rips/Čech topology)
        are unchanged.
    seed : int, sequence of int, SeedSequence or Generator
        Seed of the random basis (used by ``"random_orthonormal"`` only).

    Returns
    -------
    ndarray, shape (n, dim), float64
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2:
        raise ValueError(f"points must be a 2-D array (n, k), got shape {pts.shape}")
    k = pts.shape[1]
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim < k:
        raise ValueError(f"dim must be an integer >= the native dimension {k}, got {dim!r}")
    dim = int(dim)
    if rule == "first":
        out = np.zeros((pts.shape[0], dim))
        out[:, :k] = pts
        return out
    if rule == "random_orthonormal":
        basis = _random_orthonormal_basis(dim, k, seed)
        return pts @ basis.T
    raise ValueError(f"embed rule must be one of {EMBED_RULES}, got {rule!r}")


def _random_orthonormal_basis(dim: int, k: int, seed: Any) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((dim, k)))
    return q * np.sign(np.diag(r))


def _place(
    native: np.ndarray,
    *,
    rotation: Any,
    dim: Any,
    embed_rule: str,
    center: Any,
    rotation_seed: np.random.SeedSequence,
    embed_seed: np.random.SeedSequence,
) -> np.ndarray:
    k = native.shape[1]
    rot = _rotation_matrix(rotation, k, rotation_seed)
    pts = native if rot is None else native @ rot.T
    dim = k if dim is None else dim
    out = embed(pts, dim, embed_rule, embed_seed)
    if center is not None:
        try:
            c = np.asarray(center, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"center must be a sequence of {out.shape[1]} numbers, got {center!r}") from None
        if c.shape != (out.shape[1],) or not np.all(np.isfinite(c)):
            raise ValueError(
                f"center must be a sequence of {out.shape[1]} finite numbers (one per coordinate of dim), got {center!r}"
            )
        out += c
    return out


def _rejection_sample(
    rng: np.random.Generator, n: int, propose, accept, acceptance_guess: float
) -> np.ndarray:
    """Draw proposals in batches until ``n`` are accepted; keeps order, so deterministic."""
    kept = []
    count = 0
    while count < n:
        batch = max(64, int(1.2 * (n - count) / acceptance_guess) + 16)
        cand = propose(rng, batch)
        cand = cand[accept(cand)]
        kept.append(cand)
        count += len(cand)
    return np.concatenate(kept)[:n]


# ---------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------


def _unit_region(rng: np.random.Generator, n: int, genus: int) -> tuple[np.ndarray, float]:
    """Uniform sample of the unit-frame genus-g region; returns points and half-extent."""
    half = max(genus - 1, 0) * _REGION_HOLE_SPACING / 2  # half-length of the spine segment
    holes = (np.arange(genus) - (genus - 1) / 2) * _REGION_HOLE_SPACING

    def propose(g, m):
        return np.column_stack([g.uniform(-half - 1, half + 1, m), g.uniform(-1, 1, m)])

    def accept(p):
        dx = np.abs(p[:, 0]) - half
        dist_spine = np.hypot(np.maximum(dx, 0.0), p[:, 1])
        ok = dist_spine <= 1.0
        for hx in holes:
            ok &= np.hypot(p[:, 0] - hx, p[:, 1]) > _REGION_HOLE_RADIUS
        return ok

    box = (2 * half + 2) * 2
    area = np.pi + 4 * half - genus * np.pi * _REGION_HOLE_RADIUS**2
    return _rejection_sample(rng, n, propose, accept, area / box), half + 1.0


def genus_region(
    n: int,
    genus: int = 2,
    size: float = 1.0,
    center=None,
    rotation=None,
    dim: int | None = None,
    embed_rule: str = "first",
    seed=0,
    rows=None,
    post=None,
) -> np.ndarray:
    """Planar region with ``genus`` holes, sampled uniformly in area.

    The region is a stadium (all points within distance 1 of a horizontal segment)
    with ``genus`` round holes of radius 0.5 whose centres lie on the segment, 2 apart,
    then scaled so its half-length is ``size``. ``genus=0`` is a disk of radius
    ``size``, ``genus=1`` the annulus with radii ``size/2`` and ``size``; ``genus=2``
    is the paper's "genus-2 surface" of 2-D networks (a half-length ``size``, half-
    height ``size/2`` stadium with two holes of radius ``size/4``).
    Betti numbers (1, genus, 0). Native dimension 2.

    Parameters
    ----------
    n : int
        Number of points.
    genus : int
        Number of holes, >= 0.
    size, center, rotation, dim, embed_rule, seed, rows, post
        See the module docstring (``embed_rule`` is :func:`embed`'s ``rule``).

    Returns
    -------
    ndarray, shape (n, dim), float64 (``rows``: shape (hi - lo, dim))
    """
    n, genus = _check_n(n), _check_genus(genus)
    size = _check_positive(size, "size")

    def sample(rng, start, m):
        pts, extent = _unit_region(rng, m, genus)
        return pts * (size / extent)

    place = _placer(rotation=rotation, dim=dim, embed_rule=embed_rule, center=center)
    return _drawn(n, seed, rows, post, sample, place)


def disjoint_regions(
    n: int,
    genus: int = 1,
    count: int = 2,
    size: float = 1.0,
    gap: float = 1.0,
    center=None,
    rotation=None,
    dim: int | None = None,
    embed_rule: str = "first",
    seed=0,
    rows=None,
    post=None,
) -> np.ndarray:
    """``count`` copies of :func:`genus_region` side by side along the first axis.

    The paper's Figure 6 start: ``disjoint_regions(n, genus=1, count=2)`` gives two
    disjoint annuli, Betti numbers (2, 2, 0); in general (count, count*genus, 0).
    Each copy has half-length ``w`` and neighbouring copies are ``gap * w`` apart at
    their closest points, with ``w`` chosen so the whole row has half-length ``size``.
    With the default ``gap=1`` the copies' holes (radius ``w/2``) and the gaps
    between copies (``w``) close at the same ball radius ``w/2``.
    The copies share the area equally, so the union is uniform in area: copy ``i``
    gets ``n // count`` points, the first ``n % count`` copies one more; points are
    ordered copy by copy, left to right.

    Parameters
    ----------
    n : int
        Total number of points, >= count.
    genus : int
        Holes per copy, >= 0.
    count : int
        Number of copies, >= 1.
    gap : float
        Gap between neighbouring copies as a fraction of a copy's half-length, > 0.
    size, center, rotation, dim, embed_rule, seed, rows, post
        See the module docstring.

    Returns
    -------
    ndarray, shape (n, dim), float64
    """
    n, genus = _check_n(n), _check_genus(genus)
    count = _check_n(count, "count")
    if n < count:
        raise ValueError(f"n must be >= count={count} so every copy gets a point, got n={n}")
    size = _check_positive(size, "size")
    gap = _check_positive(gap, "gap")
    w = size / (count + (count - 1) * gap / 2)
    offsets = (np.arange(count) - (count - 1) / 2) * (2 * w + gap * w)
    sizes = np.full(count, n // count)
    sizes[: n % count] += 1
    ends = np.cumsum(sizes)

    def sample(rng, start, m):  # the copies' points in this block, copy by copy
        parts = []
        for off, first, end in zip(offsets, ends - sizes, ends):
            k = min(end, start + m) - max(first, start)
            if k <= 0:
                continue
            pts, extent = _unit_region(rng, int(k), genus)
            pts = pts * (w / extent)
            pts[:, 0] += off
            parts.append(pts)
        return np.concatenate(parts)

    place = _placer(rotation=rotation, dim=dim, embed_rule=embed_rule, center=center)
    return _drawn(n, seed, rows, post, sample, place)


def _torus_surface_points(rng: np.random.Generator, m: int, major: float, minor: float) -> np.ndarray:
    """Uniform (in area) sample of the torus about the z axis."""

    def propose(g, k):
        u = g.uniform(0, 2 * np.pi, k)
        v = g.uniform(0, 2 * np.pi, k)
        w = g.uniform(0, 1, k)
        return np.column_stack([u, v, w])

    def accept(c):
        # area element is proportional to (major + minor cos v)
        return c[:, 2] * (major + minor) <= major + minor * np.cos(c[:, 1])

    uvw = _rejection_sample(rng, m, propose, accept, major / (major + minor))
    u, v = uvw[:, 0], uvw[:, 1]
    rho = major + minor * np.cos(v)
    return np.column_stack([rho * np.cos(u), rho * np.sin(u), minor * np.sin(v)])


def genus_surface(
    n: int,
    genus: int = 2,
    size: float = 1.0,
    center=None,
    rotation=None,
    dim: int | None = None,
    embed_rule: str = "first",
    seed=0,
    rows=None,
    post=None,
) -> np.ndarray:
    """Closed orientable surface of genus ``genus`` in R^3, sampled uniformly in area.

    The surface is the boundary of the union of ``genus`` solid tori lying in the
    xy-plane in a row along x (major radius 1, minor radius 0.5, centres 2 apart, so
    neighbouring core circles touch), scaled so the half-length is ``size``; for
    ``genus=0`` it is the sphere of radius ``size``. Points are uniform on that
    boundary (a torus drawn uniformly, a point uniform on it, kept if it is not
    inside another solid torus). For ``genus=2`` this is the paper's "double torus":
    half-length ``size``, tube radius ``size/5``.
    Betti numbers (1, 2*genus, 1). Native dimension 3.

    Parameters
    ----------
    n : int
        Number of points.
    genus : int
        Genus, >= 0.
    size, center, rotation, dim, embed_rule, seed, rows, post
        See the module docstring.

    Returns
    -------
    ndarray, shape (n, dim), float64
    """
    n, genus = _check_n(n), _check_genus(genus)
    size = _check_positive(size, "size")
    if genus == 0:
        return sphere(
            n,
            k=2,
            size=size,
            center=center,
            rotation=rotation,
            dim=dim,
            embed_rule=embed_rule,
            seed=seed,
            rows=rows,
            post=post,
        )
    big, small = _SURFACE_MAJOR, _SURFACE_MINOR
    centres = (np.arange(genus) - (genus - 1) / 2) * 2 * big

    def propose(g, m):
        which = g.integers(0, genus, m)
        pts = _torus_surface_points(g, m, big, small)
        pts[:, 0] += centres[which]
        return np.column_stack([pts, which])

    def accept(c):
        ok = np.ones(len(c), dtype=bool)
        for j, cx in enumerate(centres):
            rho = np.hypot(c[:, 0] - cx, c[:, 1])
            inside = (rho - big) ** 2 + c[:, 2] ** 2 < small**2
            ok &= ~inside | (c[:, 3] == j)
        return ok

    extent = (genus - 1) * big + big + small

    def sample(rng, start, m):
        return _rejection_sample(rng, m, propose, accept, 0.7)[:, :3] * (size / extent)

    place = _placer(rotation=rotation, dim=dim, embed_rule=embed_rule, center=center)
    return _drawn(n, seed, rows, post, sample, place)


def torus(
    n: int,
    size: float = 1.0,
    minor_ratio: float = 0.4,
    center=None,
    rotation=None,
    dim: int | None = None,
    embed_rule: str = "first",
    seed=0,
    rows=None,
    post=None,
) -> np.ndarray:
    """Torus of revolution about the z axis in R^3, sampled uniformly in area.

    Major radius ``R`` and minor radius ``r = minor_ratio * R`` with ``R + r = size``.
    Betti numbers (1, 2, 1). Native dimension 3.

    Parameters
    ----------
    n : int
        Number of points.
    minor_ratio : float
        Tube radius over major radius, in (0, 1).
    size, center, rotation, dim, embed_rule, seed, rows, post
        See the module docstring.

    Returns
    -------
    ndarray, shape (n, dim), float64
    """
    n = _check_n(n)
    size = _check_positive(size, "size")
    if isinstance(minor_ratio, bool) or not isinstance(minor_ratio, numbers.Real) or not 0 < minor_ratio < 1:
        raise ValueError(f"minor_ratio must be a number in (0, 1), got {minor_ratio!r}")
    major = size / (1 + minor_ratio)

    def sample(rng, start, m):
        return _torus_surface_points(rng, m, major, minor_ratio * major)

    place = _placer(rotation=rotation, dim=dim, embed_rule=embed_rule, center=center)
    return _drawn(n, seed, rows, post, sample, place)


def sphere(
    n: int,
    k: int = 2,
    size: float = 1.0,
    center=None,
    rotation=None,
    dim: int | None = None,
    embed_rule: str = "first",
    seed=0,
    rows=None,
    post=None,
) -> np.ndarray:
    """Round sphere S^k of radius ``size`` in R^{k+1}, sampled uniformly.

    Normalised standard Gaussian vectors. The MNIST start of the paper ("uniformly
    on the surface of a 3D unit sphere", Betti (1, 0, 1)) is
    ``sphere(1024, k=2, dim=784 + 10, embed_rule=...)``. Betti numbers (b0, b1, b2):
    (2, 0, 0) for k=0, (1, 1, 0) for k=1, (1, 0, 1) for k=2, (1, 0, 0) for k>=3.
    Native dimension k+1.

    Parameters
    ----------
    n : int
        Number of points.
    k : int
        Dimension of the sphere, >= 0.
    size, center, rotation, dim, embed_rule, seed, rows, post
        See the module docstring.

    Returns
    -------
    ndarray, shape (n, dim), float64
    """
    n = _check_n(n)
    k = _check_genus(k, "k")
    size = _check_positive(size, "size")

    def propose(g, m):
        return g.standard_normal((m, k + 1))

    def accept(p):
        return np.linalg.norm(p, axis=1) > 1e-12

    def sample(rng, start, m):
        pts = _rejection_sample(rng, m, propose, accept, 1.0)
        return pts / np.linalg.norm(pts, axis=1, keepdims=True) * size

    place = _placer(rotation=rotation, dim=dim, embed_rule=embed_rule, center=center)
    return _drawn(n, seed, rows, post, sample, place)


def circle(
    n: int,
    size: float = 1.0,
    center=None,
    rotation=None,
    dim: int | None = None,
    embed_rule: str = "first",
    seed=0,
    rows=None,
    post=None,
) -> np.ndarray:
    """Circle of radius ``size``, sampled uniformly; ``sphere(n, k=1, ...)``.

    Betti numbers (1, 1, 0). Native dimension 2.
    """
    return sphere(
        n,
        k=1,
        size=size,
        center=center,
        rotation=rotation,
        dim=dim,
        embed_rule=embed_rule,
        seed=seed,
        rows=rows,
        post=post,
    )


def gaussian(
    n: int, dim: int = 2, size: float = 1.0, center=None, seed=0, rows=None, post=None
) -> np.ndarray:
    """Isotropic Gaussian cloud N(center, size^2 I) in R^dim.

    Betti numbers (1, 0, 0) (contractible). The usual random initialisation.

    Parameters
    ----------
    n : int
        Number of points.
    dim : int
        Dimension, >= 1.
    size : float
        Standard deviation per coordinate.
    center, seed, rows, post
        See the module docstring.

    Returns
    -------
    ndarray, shape (n, dim), float64
    """
    n = _check_n(n)
    dim = _check_n(dim, "dim")
    size = _check_positive(size, "size")

    def sample(rng, start, m):
        return rng.standard_normal((m, dim)) * size

    place = _placer(rotation=None, dim=dim, embed_rule="first", center=center)
    return _drawn(n, seed, rows, post, sample, place)


def figure_eight(
    n: int,
    center=None,
    rotation=None,
    dim: int | None = None,
    embed_rule: str = "first",
    seed=0,
    rows=None,
    post=None,
) -> np.ndarray:
    """The figure-eight curve ``(sin t, sin 2t)``, ``t ~ U(0, 2 pi)``: the paper code's 2-D start.

    A closed curve crossing itself once at the origin, so two loops: Betti numbers
    (1, 2, 0). Native dimension 2; the points lie in ``[-1, 1]^2``.

    Parameters
    ----------
    n : int
        Number of points.
    center, rotation, dim, embed_rule, seed, rows, post
        See the module docstring.

    Returns
    -------
    ndarray, shape (n, dim), float64
    """
    n = _check_n(n)

    def sample(rng, start, m):
        t = rng.uniform(0.0, 2.0 * np.pi, m)
        return np.column_stack([np.sin(t), np.sin(2.0 * t)])

    place = _placer(rotation=rotation, dim=dim, embed_rule=embed_rule, center=center)
    return _drawn(n, seed, rows, post, sample, place)


def two_circles(
    n: int,
    radius: float = 1.0,
    separation: float = 2.4,
    center=None,
    rotation=None,
    dim: int | None = None,
    embed_rule: str = "first",
    seed=0,
    rows=None,
    post=None,
) -> np.ndarray:
    """Two circles of ``radius`` centred at ``(0, +-separation / 2)``, evenly spaced points.

    The paper code's ``--alt`` 2-D start: the first ``n // 2`` points on the upper
    circle at angles ``2 pi j / (n // 2)``, the rest likewise on the lower one. No
    randomness (``seed`` only drives a ``"random"`` rotation or embedding). Betti
    numbers (2, 2, 0). Native dimension 2.

    Parameters
    ----------
    n : int
        Number of points, >= 2.
    radius : float
        Radius of each circle.
    separation : float
        Distance between the centres, > 2 radius (disjoint circles).
    center, rotation, dim, embed_rule, seed, rows, post
        See the module docstring.

    Returns
    -------
    ndarray, shape (n, dim), float64
    """
    n = _check_n(n)
    if n < 2:
        raise ValueError(f"n must be an integer >= 2 (one point per circle at least), got {n!r}")
    radius = _check_positive(radius, "radius")
    separation = _check_positive(separation, "separation")
    if separation <= 2.0 * radius:
        raise ValueError(
            f"separation must be > 2 radius = {2.0 * radius} (disjoint circles), got {separation!r}"
        )

    def sample(rng, start, m):  # no draw: point i is fixed by i
        parts = []
        for first, count, cy in ((0, n // 2, separation / 2.0), (n // 2, n - n // 2, -separation / 2.0)):
            a, z = max(first, start), min(first + count, start + m)
            if a < z:
                theta = 2.0 * np.pi * np.arange(a - first, z - first) / count
                parts.append(np.column_stack([radius * np.cos(theta), cy + radius * np.sin(theta)]))
        return np.concatenate(parts)

    place = _placer(rotation=rotation, dim=dim, embed_rule=embed_rule, center=center)
    return _drawn(n, seed, rows, post, sample, place)


def _soft_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    return -np.logaddexp(-k * a, -k * b) / k


def solid_double_torus(
    n: int,
    major: float = 0.5,
    minor: float = 0.2,
    offset: float = 0.8,
    sharpness: float = 5.0,
    center=None,
    rotation=None,
    dim: int | None = None,
    embed_rule: str = "first",
    seed=0,
    rows=None,
    post=None,
) -> np.ndarray:
    """Uniform sample of the solid soft-min double torus: the paper code's 3-D start.

    The set ``softmin_k(f(x - offset), f(x + offset)) <= 0`` with
    ``f = (sqrt(x^2 + y^2) - major)^2 + z^2 - minor^2`` (a solid torus about the z axis,
    shifted along x) and ``softmin_k(a, b) = -log(exp(-k a) + exp(-k b)) / k``, drawn by
    rejection from the box ``|x| <= offset + major + minor``, ``|y| <= major + minor``,
    ``|z| <= 1.05 minor`` (the box of the authors' code, which trims the junction's
    bulge in z). A genus-2 handlebody: Betti numbers (1, 2, 0). Native dimension 3.
    The paper rotates it by :func:`euler_rotation` ``(0.6, 0.3, 1.1)``
    (``rotation = [0.6, 0.3, 1.1]``).

    Parameters
    ----------
    n : int
        Number of points.
    major, minor : float
        Radii of each torus (``minor < major``).
    offset : float
        The tori are centred at ``(+-offset, 0, 0)``.
    sharpness : float
        k of the soft minimum (larger: closer to the plain union).
    center, rotation, dim, embed_rule, seed, rows, post
        See the module docstring.

    Returns
    -------
    ndarray, shape (n, dim), float64
    """
    n = _check_n(n)
    major, minor = _check_positive(major, "major"), _check_positive(minor, "minor")
    offset, sharpness = _check_positive(offset, "offset"), _check_positive(sharpness, "sharpness")
    if minor >= major:
        raise ValueError(f"minor must be < major = {major} (a torus with a hole), got {minor!r}")
    half = np.array([offset + major + minor, major + minor, 1.05 * minor])

    def propose(g, m):
        return g.uniform(-half, half, size=(m, 3))

    def accept(p):
        x, y, z = p[:, 0], p[:, 1], p[:, 2]
        f = [(np.hypot(x - c, y) - major) ** 2 + z**2 - minor**2 for c in (offset, -offset)]
        return _soft_min(f[0], f[1], sharpness) <= 0.0

    def sample(rng, start, m):
        return _rejection_sample(rng, m, propose, accept, 0.3)

    place = _placer(rotation=rotation, dim=dim, embed_rule=embed_rule, center=center)
    return _drawn(n, seed, rows, post, sample, place)


def union(*clouds: np.ndarray) -> np.ndarray:
    """Stack point clouds of equal dimension into one (n_1 + n_2 + ..., dim) array.

    Whether the union is disjoint (and its Betti numbers the sums) is up to the
    placement of the parts; see :func:`disjoint_regions` for a ready-made one.
    """
    if not clouds:
        raise ValueError("union needs at least one cloud")
    arrays = [np.asarray(c, dtype=np.float64) for c in clouds]
    dims = {a.shape[1] if a.ndim == 2 else None for a in arrays}
    if None in dims or len(dims) != 1:
        raise ValueError(f"union needs 2-D clouds of equal dimension, got shapes {[a.shape for a in arrays]}")
    return np.concatenate(arrays)


# ---------------------------------------------------------------------------
# registry for TOML scenarios
# ---------------------------------------------------------------------------

_AFFINE = ("axis_scale", "linear_map")
_PLACEMENT = ("size", "center", "rotation", "dim", "embed", "seed") + _AFFINE
_AUTHORS_PLACEMENT = tuple(k for k in _PLACEMENT if k != "size")

#: Each shape's sampler, the make_cloud keys it takes, and its native dimension ("native": an
#: int, a function of the spec for the sphere, None for the gaussian, drawn in R^dim directly,
#: and for the union, whose parts decide).
SHAPES: dict[str, dict[str, Any]] = {
    "genus_region": {"fn": genus_region, "keys": ("n", "genus") + _PLACEMENT, "native": 2},
    "disjoint_regions": {
        "fn": disjoint_regions,
        "keys": ("n", "genus", "count", "gap") + _PLACEMENT,
        "native": 2,
    },
    "genus_surface": {"fn": genus_surface, "keys": ("n", "genus") + _PLACEMENT, "native": 3},
    "torus": {"fn": torus, "keys": ("n", "minor_ratio") + _PLACEMENT, "native": 3},
    "sphere": {"fn": sphere, "keys": ("n", "k") + _PLACEMENT, "native": lambda spec: spec.get("k", 2) + 1},
    "circle": {"fn": circle, "keys": ("n",) + _PLACEMENT, "native": 2},
    "gaussian": {"fn": gaussian, "keys": ("n", "dim", "size", "center", "seed") + _AFFINE, "native": None},
    "figure_eight": {"fn": figure_eight, "keys": ("n",) + _AUTHORS_PLACEMENT, "native": 2},
    "two_circles": {
        "fn": two_circles,
        "keys": ("n", "radius", "separation") + _AUTHORS_PLACEMENT,
        "native": 2,
    },
    "solid_double_torus": {
        "fn": solid_double_torus,
        "keys": ("n", "major", "minor", "offset", "sharpness") + _AUTHORS_PLACEMENT,
        "native": 3,
    },
    "union": {"fn": None, "keys": ("parts", "dim", "seed"), "native": None},
}


def native_dimension(spec: Mapping[str, Any]) -> int | None:
    """The dimension a shape is sampled in before it is placed in R^dim (None: gaussian, union)."""
    native = SHAPES[spec["shape"]]["native"]
    return native(spec) if callable(native) else native


def _validated(spec: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(spec, Mapping):
        raise TypeError(f"cloud spec must be a dict (a TOML table), got {type(spec).__name__}")
    if "shape" not in spec:
        raise ValueError(f"cloud spec needs key 'shape', one of {sorted(SHAPES)}")
    shape = spec["shape"]
    if shape not in SHAPES:
        raise ValueError(f"cloud spec key 'shape' must be one of {sorted(SHAPES)}, got {shape!r}")
    allowed = SHAPES[shape]["keys"]
    params = {key: value for key, value in spec.items() if key != "shape"}
    for key in params:
        if key not in allowed:
            raise ValueError(
                f"cloud spec key {key!r} is not valid for shape {shape!r}; valid keys: {', '.join(allowed)}"
            )
    required = ("parts",) if shape == "union" else ("n",)
    for key in required:
        if key not in params:
            raise ValueError(f"cloud spec for shape {shape!r} needs key {key!r}")
    return shape, params


def _union_parts(params: dict[str, Any]) -> list[dict[str, Any]]:
    parts = params["parts"]
    if not isinstance(parts, (list, tuple)) or not parts or not all(isinstance(p, Mapping) for p in parts):
        raise ValueError(
            f"cloud spec key 'parts' must be a non-empty list of cloud specs (tables), got {parts!r}"
        )
    return [dict(p) for p in parts]


def cloud_size(spec: Mapping[str, Any]) -> int:
    """The number of points of a :func:`make_cloud` spec (a union's: its parts' sum)."""
    shape, params = _validated(spec)
    if shape == "union":
        return sum(cloud_size(part) for part in _union_parts(params))
    return _check_n(params["n"])


def make_cloud(spec: Mapping[str, Any], rows=None, post=None) -> np.ndarray:
    """Build a cloud from a dict, as a TOML scenario names it.

    Keys
    ----
    shape : str, required
        One of ``genus_region``, ``disjoint_regions``, ``genus_surface``, ``torus``,
        ``sphere``, ``circle``, ``gaussian``, ``figure_eight``, ``two_circles``,
        ``solid_double_torus``, ``union``.
    n : int, required (all shapes but ``union``)
        Number of points (``disjoint_regions``: in total).
    genus : int
        ``genus_region`` (holes, default 2), ``disjoint_regions`` (holes per copy,
        default 1), ``genus_surface`` (genus, default 2).
    count : int
        ``disjoint_regions`` only: number of copies (default 2).
    gap : float
        ``disjoint_regions`` only: gap between copies over a copy's half-length (1.0).
    minor_ratio : float
        ``torus`` only: tube radius over major radius, in (0, 1) (default 0.4).
    k : int
        ``sphere`` only: the sphere S^k, native space R^{k+1} (default 2).
    size : float
        Scale, > 0 (default 1.0): bounding radius, or the standard deviation for
        ``gaussian``.
    center : list of float
        Translation, length ``dim`` (default origin).
    rotation : None, float, list of lists, list of 3 floats, or "random"
        Rotation in the native space (not for ``gaussian``); 3 numbers are Euler
        angles of a 3-D shape (:func:`euler_rotation`).
    axis_scale, linear_map : list of float, list of lists
        Linear map after embedding, before ``center`` (see :func:`affine`).
    radius, separation : float
        ``two_circles`` only (see :func:`two_circles`).
    major, minor, offset, sharpness : float
        ``solid_double_torus`` only (see :func:`solid_double_torus`).
    dim : int
        Output dimension (default native: 2 for regions and circle, 3 for
        surfaces/torus, k+1 for sphere; required-in-effect for ``gaussian``, default 2).
        For ``union``: checked against the parts' dimension if given.
    embed : "first" or "random_orthonormal"
        How the native shape enters R^dim (default "first"); see :func:`embed`.
    seed : int or list of int
        Seed (default 0); see the module docstring.
    parts : list of specs
        ``union`` only: the cloud specs to stack, in order. A part without its own
        ``seed`` uses seed ``[seed, i]`` (``seed`` the union's, default 0; ``i`` the
        part's index), so parts differ.
    rows, post (arguments)
        Points ``lo..hi-1`` only, and a map of each block's placed points (after
        ``axis_scale``, ``linear_map`` and ``center``); see the module docstring (blocks).
        A union's parts are drawn in their own blocks.

    Returns
    -------
    ndarray, shape (n, dim), float64 (``rows``: shape (hi - lo, dim))

    Raises
    ------
    ValueError
        Unknown shape or key, missing required key, or a bad value (the message names
        the key and what was expected).
    """
    shape, params = _validated(spec)
    if shape == "union":
        clouds = []
        entropy = _seed_sequence(params.get("seed", 0)).entropy
        # a SeedSequence fills in its entropy when made, so here it is never None
        base: list[int] = list(entropy) if isinstance(entropy, (list, tuple)) else [cast(int, entropy)]
        parts = _union_parts(params)
        lo, hi = _check_rows(sum(cloud_size(p) for p in parts), rows)
        first = 0
        for i, part in enumerate(parts):
            part.setdefault("seed", base + [i])
            end = first + cloud_size(part)
            if rows is None:
                clouds.append(make_cloud(part, post=post))
            elif max(lo, first) < min(hi, end):  # this part's share of the rows
                clouds.append(make_cloud(part, (max(lo, first) - first, min(hi, end) - first), post))
            first = end
        out = union(*clouds)
        if "dim" in params and params["dim"] != out.shape[1]:
            raise ValueError(
                f"cloud spec key 'dim' is {params['dim']!r} but the union's parts have dimension {out.shape[1]}"
            )
        return out
    kwargs = dict(params)
    placement = {k: kwargs.pop(k, None) for k in ("axis_scale", "linear_map", "center")}
    if "embed" in kwargs:
        kwargs["embed_rule"] = kwargs.pop("embed")
        if kwargs["embed_rule"] not in EMBED_RULES:
            raise ValueError(
                f"cloud spec key 'embed' must be one of {EMBED_RULES}, got {kwargs['embed_rule']!r}"
            )
    if any(v is not None for v in placement.values()):

        def placed(points):
            points = affine(points, **placement)
            return points if post is None else post(points)

        return SHAPES[shape]["fn"](**kwargs, rows=rows, post=placed)
    return SHAPES[shape]["fn"](**kwargs, rows=rows, post=post)


def known_betti(spec: Mapping[str, Any]) -> tuple[int, int, int]:
    """Betti numbers (b0, b1, b2) of the shape a :func:`make_cloud` spec samples.

    The numbers of the underlying continuous shape (region, surface, sphere, ...),
    which a dense enough sample recovers at a suitable scale. Embedding, rotation,
    translation and size do not change them.

    Parameters
    ----------
    spec : dict
        A cloud spec, validated as by :func:`make_cloud`.

    Returns
    -------
    tuple of int
    """
    shape, params = _validated(spec)
    if shape == "union":
        total = np.zeros(3, dtype=int)
        for part in _union_parts(params):
            total += known_betti(part)
        return (int(total[0]), int(total[1]), int(total[2]))
    if shape == "genus_region":
        return (1, _check_genus(params.get("genus", 2)), 0)
    if shape == "disjoint_regions":
        count = _check_n(params.get("count", 2), "count")
        return (count, count * _check_genus(params.get("genus", 1)), 0)
    if shape == "genus_surface":
        return (1, 2 * _check_genus(params.get("genus", 2)), 1)
    if shape == "torus":
        return (1, 2, 1)
    if shape == "circle":
        return (1, 1, 0)
    if shape == "gaussian":
        return (1, 0, 0)
    if shape in ("figure_eight", "solid_double_torus"):
        return (1, 2, 0)
    if shape == "two_circles":
        return (2, 2, 0)
    k = _check_genus(params.get("k", 2), "k")  # sphere
    return {0: (2, 0, 0), 1: (1, 1, 0), 2: (1, 0, 1)}.get(k, (1, 0, 0))
