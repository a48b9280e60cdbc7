"""Per-frame Betti numbers: particledyn.topology against its peers on the same inputs.

Every peer gets the same cloud and the same truncation (Rips edges <= r), and
the strongest settings it offers (giotto-ph: threshold, edge collapse, all
threads). Reported: median wall time over repeats, the Betti numbers each tool
found, and the ratio peer / ours. Nothing here passes or fails on time.

    python benchmarks/bench_topology.py            # ripser, giotto-ph, gudhi alpha
    python benchmarks/bench_topology.py --full     # + dionysus, gudhi Rips, zigzag H2 (minutes)
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np

from particledyn.topology import betti_numbers, cloud_diameter, maxmin_landmarks, zigzag_barcode
from particledyn.topology.betti import default_threads


def sphere(n, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, 3))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def circle3d(n, seed=0):
    t = np.random.default_rng(seed).uniform(0, 2 * np.pi, n)
    return np.c_[np.cos(t), np.sin(t), np.zeros(n)]


def count(diagrams, r):
    """b_k = #{birth <= r < death} from per-dimension (n, 2) arrays."""
    return tuple(int(np.count_nonzero((d[:, 0] <= r) & (d[:, 1] > r))) for d in diagrams)


# --- peers: each returns (b_0, ..., b_max_dim) ---------------------------------------------

def peer_ripser(X, r, max_dim):
    import ripser
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return count(ripser.ripser(X, maxdim=max_dim, thresh=r)["dgms"], r)


def peer_giotto(X, r, max_dim):
    from gph import ripser_parallel
    out = ripser_parallel(X, maxdim=max_dim, thresh=r, n_threads=default_threads(),
                          collapse_edges=True)
    return count(out["dgms"], r)


def peer_gudhi_rips(X, r, max_dim):
    import gudhi
    tree = gudhi.RipsComplex(points=X, max_edge_length=r).create_simplex_tree(max_dimension=max_dim + 1)
    tree.compute_persistence(homology_coeff_field=2)
    return tuple(int(b) for b in (tree.persistent_betti_numbers(r, r) + [0] * (max_dim + 1))[:max_dim + 1])


def peer_dionysus(X, r, max_dim):
    import dionysus as d
    f = d.fill_rips(X, max_dim + 1, r)
    dgms = d.init_diagrams(d.cohomology_persistence(f, prime=2), f)
    return count([np.array([[p.birth, p.death] for p in dgms[k]]).reshape(-1, 2)
                  if k < len(dgms) else np.zeros((0, 2)) for k in range(max_dim + 1)], r)


def peer_gudhi_alpha(X, radius, max_dim, precision="safe"):
    import gudhi
    alpha = gudhi.AlphaComplex(points=X, precision=precision)
    tree = alpha.create_simplex_tree(max_alpha_square=radius ** 2)
    tree.compute_persistence(homology_coeff_field=2, persistence_dim_max=True)
    return count([np.sqrt(np.asarray(tree.persistence_intervals_in_dimension(k)).reshape(-1, 2))
                  for k in range(max_dim + 1)], radius)


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
        print(f"  {name:<22s} {t:9.4f} s   betti={betti[name]} ({same})   "
              f"peer/ours = {t / t_ours:6.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="also run dionysus and gudhi Rips (slow)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--big", type=int, default=10 ** 6, help="N of the landmark run")
    ap.add_argument("--landmarks", type=int, default=1000)
    args = ap.parse_args()
    rep, slow = args.repeats, max(1, args.repeats // 5)
    print(f"threads: {default_threads()}, repeats: {rep} (slow peers: {slow})")

    X = sphere(1000)
    r = cloud_diameter(X) / 4
    peers = [("ripser (thresh=r)", peer_ripser, slow), ("giotto-ph (thresh=r)", peer_giotto, rep)]
    if args.full:
        peers += [("gudhi Rips", peer_gudhi_rips, 1), ("dionysus fill_rips", peer_dionysus, 1)]
    compare("Rips, sphere, r = diam/4 (the paper's scale)", X, r, 2, ours_rips, peers, rep)

    X = circle3d(500)
    peers = [("ripser (thresh=r)", peer_ripser, slow), ("giotto-ph (thresh=r)", peer_giotto, rep)]
    if args.full:
        peers += [("gudhi Rips", peer_gudhi_rips, 1), ("dionysus fill_rips", peer_dionysus, 1)]
    compare("Rips, circle in R^3, r = 0.25", X, 0.25, 2, ours_rips, peers, rep)

    for name, X in (("circle in R^3", circle3d(2000)), ("sphere", sphere(2000))):
        peers = [("ripser (thresh=r)", peer_ripser, slow), ("giotto-ph (thresh=r)", peer_giotto, rep)]
        compare(f"Rips, {name}, r = 0.25", X, 0.25, 1, ours_rips, peers, rep)
        compare(f"alpha (union of balls), {name}, radius 0.125", X, 0.125, 1, ours_alpha,
                [("gudhi Alpha (default)", peer_gudhi_alpha, rep),
                 ("gudhi Alpha (fast)", lambda *a: peer_gudhi_alpha(*a, precision="fast"), rep)],
                rep)

    rng = np.random.default_rng(2)
    base = sphere(200, seed=2)
    frames = [base + rng.normal(scale=0.01, size=base.shape) for _ in range(10)]
    max_dim = 2 if args.full else 1
    print(f"\nZigzag barcode, 10 frames of a jittered 200-point sphere, Rips at 0.5, H0..H{max_dim}")
    t_fast, fast = timed(lambda: zigzag_barcode(frames, 0.5, max_dim, method="fast"), slow)
    t_std, std = timed(lambda: zigzag_barcode(frames, 0.5, max_dim, method="standard"), 1)
    same = "same" if np.array_equal(fast, std) else "DIFFERENT"
    print(f"  dionysus fast_zigzag (ours)   {t_fast:9.4f} s   {len(fast)} bars")
    print(f"  zigzag_homology_persistence   {t_std:9.4f} s   {len(std)} bars ({same})   "
          f"peer/ours = {t_std / t_fast:6.2f}")

    X = sphere(args.big, seed=1)
    print(f"\nLandmarks + Betti, sphere, N={len(X)}, {args.landmarks} landmarks, Rips at diam(L)/4")
    betti_numbers(X[:5000], landmarks=50)  # warm-up
    t, res = timed(lambda: betti_numbers(X, landmarks=args.landmarks), max(1, rep // 2))
    t_lm, _ = timed(lambda: maxmin_landmarks(X, args.landmarks), max(1, rep // 2))
    print(f"  per frame {t:.3f} s (landmark selection {t_lm:.3f} s)  betti={res.betti[0].tolist()}  "
          f"covering radius={res.covering_radius:.4f}  scale={res.scales[0]:.4f}")


if __name__ == "__main__":
    main()
