"""Per-frame persistence: particledyn.topology against its peers on one shared input.

Rips: for each cloud, size and radius r, the thresholded sparse distance matrix (edges <= r,
listed by a k-d tree: what particledyn builds itself) is built once and every peer is given
that same matrix: ripser (``distance_matrix=True``, sparse), giotto-ph (``metric="precomputed"``),
gudhi (a simplex tree from the same edges, expanded to the flag complex). particledyn's own time
starts from the points, so it also pays for building the matrix (printed apart). Each tool runs
at 1 and at 2 threads where it has threads (giotto-ph, particledyn); ripser and gudhi have none.
The full persistence diagrams (every pair with death > birth, per dimension) are compared with
particledyn's, not just the Betti numbers. Figures: median wall and CPU seconds over
``--repeats`` (>= 5) interleaved rounds; the ratio is of CPU time (steadier on a shared
machine; at 2 threads it counts both threads' work). Nothing here passes or fails on time.

    python benchmarks/bench_topology.py            # Rips table, alpha, zigzag, landmarks
    python benchmarks/bench_topology.py --full     # + dionysus (minutes)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import numpy as np

from particledyn.topology import betti_numbers, cloud_diameter, maxmin_landmarks, zigzag_barcode
from particledyn.topology.betti import default_threads, rips_diagram


def sphere(n, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, 3))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def circle3d(n, seed=0):
    t = np.random.default_rng(seed).uniform(0, 2 * np.pi, n)
    return np.c_[np.cos(t), np.sin(t), np.zeros(n)]


def neuron_cloud(n, seed=0):
    """Two circles of radius 1 at (0, +-1.2) in the (w, a) plane, jittered: the authors' 2-D start."""
    t = np.linspace(0, 2 * np.pi, n // 2, endpoint=False)
    circle = np.c_[np.cos(t), np.sin(t)]
    x = np.concatenate([circle + [0, 1.2], circle - [0, 1.2]])
    return x + np.random.default_rng(seed).normal(scale=1e-3, size=x.shape)


def count(diagrams, r):
    """b_k = #{birth <= r < death} from per-dimension (n, 2) arrays."""
    return tuple(int(np.count_nonzero((d[:, 0] <= r) & (d[:, 1] > r))) for d in diagrams)


# --- peers: each returns (b_0, ..., b_max_dim) ---------------------------------------------


def shared_input(X, r):
    """The thresholded sparse distance matrix every Rips peer gets: edges <= r, upper triangle."""
    from scipy import sparse
    from scipy.spatial import cKDTree

    ij = cKDTree(X).query_pairs(r, output_type="ndarray")
    length = np.sqrt(((X[ij[:, 0]] - X[ij[:, 1]]) ** 2).sum(axis=1))
    keep = length <= r
    return sparse.coo_matrix((length[keep], (ij[keep, 0], ij[keep, 1])), shape=(len(X), len(X)))


def _by_dim(diagrams, max_dim):
    """Pairs with death > birth per dimension, sorted: the part of a diagram every tool reports."""
    out = []
    for k in range(max_dim + 1):
        d = diagrams[k] if k < len(diagrams) else np.zeros((0, 2))
        d = np.asarray(d, dtype=np.float64).reshape(-1, 2)
        d = d[d[:, 1] > d[:, 0]]
        out.append(d[np.lexsort((d[:, 1], d[:, 0]))])
    return out


def same_diagrams(a, b, rtol=1e-6) -> bool:
    """Same pairs up to float32 rounding (ripser and giotto-ph keep distances in float32, gudhi's
    edge insertion too)."""
    return all(
        x.shape == y.shape
        and np.array_equal(np.isinf(x), np.isinf(y))
        and np.allclose(x[np.isfinite(x)], y[np.isfinite(y)], rtol=rtol, atol=1e-12)
        for x, y in zip(a, b)
    )


def ours_rips_diagram(X, graph, r, max_dim, threads):
    d = rips_diagram(X, max_dim, r, n_threads=threads)
    return _by_dim([d[d[:, 0] == k, 1:] for k in range(max_dim + 1)], max_dim)


def peer_ripser_sparse(X, graph, r, max_dim, threads):
    import ripser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return _by_dim(ripser.ripser(graph, maxdim=max_dim, distance_matrix=True)["dgms"], max_dim)


def peer_giotto_sparse(X, graph, r, max_dim, threads):
    from gph import ripser_parallel

    out = ripser_parallel(
        graph, maxdim=max_dim, metric="precomputed", n_threads=threads, collapse_edges=max_dim >= 2
    )
    return _by_dim(out["dgms"], max_dim)


def peer_gudhi_sparse(X, graph, r, max_dim, threads):
    import gudhi

    tree = gudhi.SimplexTree()
    tree.insert_batch(np.arange(graph.shape[0])[None, :], np.zeros(graph.shape[0]))
    tree.insert_edges_from_coo_matrix(graph)
    tree.expansion(max_dim + 1)
    tree.compute_persistence(homology_coeff_field=2, persistence_dim_max=True)
    return _by_dim([tree.persistence_intervals_in_dimension(k) for k in range(max_dim + 1)], max_dim)


RIPS_TOOLS = [
    ("particledyn", ours_rips_diagram, True),
    ("ripser (sparse)", peer_ripser_sparse, False),
    ("giotto-ph (sparse)", peer_giotto_sparse, True),
    ("gudhi (same edges)", peer_gudhi_sparse, False),
]
"""(name, diagram function, has threads)."""


def compare_rips(title, X, r, max_dim, repeats, threads_list):
    """Every tool on the same sparse matrix, interleaved rounds; medians of wall and CPU time."""
    t0 = time.perf_counter()
    graph = shared_input(X, r)
    build = time.perf_counter() - t0
    print(
        f"\n{title}  (N={len(X)}, D={X.shape[1]}, r={r:.4g}, {graph.nnz} edges <= r, H0..H{max_dim}; "
        f"building the shared matrix: {build:.4f} s, included in particledyn's time only)"
    )
    runs = [(name, fn, t) for name, fn, threaded in RIPS_TOOLS for t in (threads_list if threaded else [1])]
    for _name, fn, t in runs:
        fn(X[:10], shared_input(X[:10], r), r, max_dim, t)  # warm-up: imports, numba
    wall = {(n, t): [] for n, _, t in runs}
    cpu = {(n, t): [] for n, _, t in runs}
    diagrams = {}
    for _ in range(repeats):
        for name, fn, t in runs:
            w, c = time.perf_counter(), time.process_time()
            diagrams[name, t] = fn(X, graph, r, max_dim, t)
            cpu[name, t].append(time.process_time() - c)
            wall[name, t].append(time.perf_counter() - w)
    mine = {t: statistics.median(cpu["particledyn", t]) for t in threads_list}
    reference = diagrams["particledyn", threads_list[0]]
    for name, _, t in runs:
        w, c = statistics.median(wall[name, t]), statistics.median(cpu[name, t])
        same = "same" if same_diagrams(diagrams[name, t], reference) else "DIFFERENT"
        ratio = c / mine[t] if t in mine else c / mine[threads_list[0]]
        pairs = "/".join(str(len(d)) for d in diagrams[name, t])
        print(
            f"  {name:<20s} {t} thr  wall {w:8.4f} s  cpu {c:8.4f} s  pairs {pairs:<14s} diagram {same:9s} "
            f"cpu peer/ours {ratio:6.2f}"
        )


def peer_dionysus(X, r, max_dim):
    import dionysus as d

    f = d.fill_rips(X, max_dim + 1, r)
    dgms = d.init_diagrams(d.cohomology_persistence(f, prime=2), f)
    return count(
        [
            np.array([[p.birth, p.death] for p in dgms[k]]).reshape(-1, 2)
            if k < len(dgms)
            else np.zeros((0, 2))
            for k in range(max_dim + 1)
        ],
        r,
    )


def peer_gudhi_alpha(X, radius, max_dim, precision="safe"):
    import gudhi

    alpha = gudhi.AlphaComplex(points=X, precision=precision)
    tree = alpha.create_simplex_tree(max_alpha_square=radius**2)
    tree.compute_persistence(homology_coeff_field=2, persistence_dim_max=True)
    return count(
        [
            np.sqrt(np.asarray(tree.persistence_intervals_in_dimension(k)).reshape(-1, 2))
            for k in range(max_dim + 1)
        ],
        radius,
    )


def ours_rips(X, r, max_dim):
    return tuple(betti_numbers(X, scale=r, max_dim=max_dim).betti[0].tolist())


def ours_alpha(X, radius, max_dim):
    return tuple(betti_numbers(X, scale=radius, max_dim=max_dim, complex="alpha").betti[0].tolist())


def timed(fn, repeats, *args):
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def compare(title, X, r, max_dim, ours, peers, repeats):
    """Time ours and each peer in interleaved rounds (the machine is noisy), report medians."""
    print(f"\n{title}  (N={len(X)}, D={X.shape[1]}, scale={r:.4g}, b0..b{max_dim})")
    tools = [("particledyn", ours, repeats)] + list(peers)
    for _, fn, _ in tools:
        fn(X[:10], r, max_dim)  # warm-up: numba compile / first imports outside the timing
    times = {name: [] for name, _, _ in tools}
    betti = {}
    for round_ in range(repeats):
        for name, fn, reps in tools:
            if round_ < reps:
                t0 = time.perf_counter()
                betti[name] = fn(X, r, max_dim)
                times[name].append(time.perf_counter() - t0)
    t_ours = statistics.median(times["particledyn"])
    print(f"  {'particledyn':<22s} {t_ours:9.4f} s   betti={betti['particledyn']}")
    for name, _, _ in peers:
        t = statistics.median(times[name])
        same = "same" if betti[name] == betti["particledyn"] else "DIFFERENT"
        print(f"  {name:<22s} {t:9.4f} s   betti={betti[name]} ({same})   peer/ours = {t / t_ours:6.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="also run dionysus (slow)")
    ap.add_argument(
        "--sizes", type=int, nargs="+", default=[500, 1024, 2000], help="cloud sizes of the Rips table"
    )
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--big", type=int, default=10**6, help="N of the landmark run")
    ap.add_argument("--landmarks", type=int, default=1000)
    args = ap.parse_args()
    if args.repeats < 5:
        ap.error(f"--repeats {args.repeats}: expected >= 5 timed runs")
    rep = slow = args.repeats
    print(
        f"CPUs: {default_threads()}, repeats: {rep}; load average at start: "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )

    threads_list = sorted({1, min(2, default_threads())})
    for n in args.sizes:
        X = sphere(n)
        for r in (0.15, 0.25, cloud_diameter(X) / 4):
            compare_rips(f"Rips, sphere, r = {r:.3g}", X, r, 2 if r < 0.3 else 1, rep, threads_list)
        X = circle3d(n)
        for r in (0.1, 0.25):
            compare_rips(f"Rips, circle in R^3, r = {r:.3g}", X, r, 1, rep, threads_list)
        X = neuron_cloud(n)
        r = cloud_diameter(X) / 4
        compare_rips(
            f"Rips, two circles of neurons (authors' start), r = diam/4 = {r:.3g}", X, r, 1, rep, threads_list
        )
    if args.full:
        X = circle3d(500)
        compare(
            "Rips, circle in R^3, r = 0.25",
            X,
            0.25,
            2,
            ours_rips,
            [("dionysus fill_rips", peer_dionysus, 1)],
            rep,
        )

    for name, X in (("circle in R^3", circle3d(2000)), ("sphere", sphere(2000))):
        compare(
            f"alpha (union of balls), {name}, radius 0.125",
            X,
            0.125,
            1,
            ours_alpha,
            [
                ("gudhi Alpha (default)", peer_gudhi_alpha, rep),
                ("gudhi Alpha (fast)", lambda *a: peer_gudhi_alpha(*a, precision="fast"), rep),
            ],
            rep,
        )

    rng = np.random.default_rng(2)
    base = sphere(200, seed=2)
    frames = [base + rng.normal(scale=0.01, size=base.shape) for _ in range(10)]
    max_dim = 2 if args.full else 1
    print(f"\nZigzag barcode, 10 frames of a jittered 200-point sphere, Rips at 0.5, H0..H{max_dim}")
    t_fast, fast = timed(lambda: zigzag_barcode(frames, 0.5, max_dim, method="fast"), slow)
    t_std, std = timed(lambda: zigzag_barcode(frames, 0.5, max_dim, method="standard"), 1)
    same = "same" if np.array_equal(fast, std) else "DIFFERENT"
    print(f"  dionysus fast_zigzag (ours)   {t_fast:9.4f} s   {len(fast)} bars")
    print(
        f"  zigzag_homology_persistence   {t_std:9.4f} s   {len(std)} bars ({same})   "
        f"peer/ours = {t_std / t_fast:6.2f}"
    )

    X = sphere(args.big, seed=1)
    print(f"\nLandmarks + Betti, sphere, N={len(X)}, {args.landmarks} landmarks, Rips at diam(L)/4")
    betti_numbers(X[:5000], landmarks=50)  # warm-up
    t, res = timed(lambda: betti_numbers(X, landmarks=args.landmarks), max(1, rep // 2))
    t_lm, _ = timed(lambda: maxmin_landmarks(X, args.landmarks), max(1, rep // 2))
    print(
        f"  per frame {t:.3f} s (landmark selection {t_lm:.3f} s)  betti={res.betti[0].tolist()}  "
        f"covering radius={res.covering_radius:.4f}  scale={res.scales[0]:.4f}"
    )


if __name__ == "__main__":
    main()
