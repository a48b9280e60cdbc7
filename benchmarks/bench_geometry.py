"""Benchmark of the geometry diagnostics.

1. N = 10^6 particles in D = 3: pairwise K (kNN), the Lemma 1/2 check and merge
   detection together, per step, with one shared NeighbourCache (the x(t+1)
   lists built at step t+1 are x(t)'s at step t+2), against the same three
   observers each with its own cache (the peer), in the same run.
2. lambda_max of a teacher-student sigmoid net with N = 10^4 neurons, d = 2:
   Hessian-vector products per Lanczos solve, cold and warm-started along
   gradient descent, against power iteration to the same residual (the peer).
3. One exact Hessian-vector product of the engine's two-layer kernel (fused numba loops,
   float64; what the sharpness observer calls) against the plain-numpy reference and, when
   PyTorch is installed, PyTorch's double backward, in the same run: sigmoid, MSE, d = 2,
   N = 4000 neurons, 3500 samples (the 3-D Table 1 scenarios).
4. Cost per call of the pairwise K and the merges observers (one shared cache) at N = 10^6
   and 10^7, D = 3, on a spread cloud and on a collapsed one (every particle within 1e-4 of
   one point, as a diverged run ends): seconds per call and the process's peak memory.

Run: python benchmarks/bench_geometry.py [--n 1000000] [--steps 4] [--hvp-neurons 4000]
     python benchmarks/bench_geometry.py --only scale [--scale-n 1000000,10000000]
Prints figures; never asserts on time.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from particledyn.geometry import (
    LemmaObserver,
    MergeObserver,
    NeighbourCache,
    PairwiseLipschitzObserver,
    geometry_observers,
    top_eigenpairs,
)
from particledyn.geometry.reference_nets import teacher_student
from particledyn.kernels import TwoLayerNet
from particledyn.observers import StepInfo


def field(X):
    """A smooth equivariant field pulling particles towards the integer lattice."""
    return -0.5 * np.sin(2 * np.pi * X) / (2 * np.pi)


def trajectory(n, steps, lr, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.0, 5.0, (n, 3))
    # 2% of the particles in pairs 0.5 eps apart, so that atoms of size 2 exist
    m = n // 100
    X[n - m :] = X[n - 2 * m : n - m] + 0.005 * rng.standard_normal((m, 3)) / np.sqrt(3)
    frames, updates = [X], []
    for _ in range(steps):
        U = field(frames[-1])
        updates.append(U)
        frames.append(frames[-1] + lr * U)
    return frames, updates


def run_observers(observers, frames, updates, lr):
    masses = np.full(len(frames[0]), 1.0 / len(frames[0]))
    times, cpu, last = [], [], None
    for step, X in enumerate(frames):
        info = StepInfo(
            step=step,
            time=step * lr,
            positions=X,
            masses=masses,
            lr=lr,
            previous_positions=frames[step - 1] if step else None,
            update=updates[step - 1] if step else None,
            field=updates[step - 1] if step else None,
        )
        start, start_cpu = time.perf_counter(), time.process_time()
        last = [dict(o.observe(info)) for o in observers]
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return times, cpu, last


def bench_pairs(n, steps, lr=1.0):
    frames, updates = trajectory(n, steps, lr)
    shared = geometry_observers(K="pairwise", eps=0.01, k=6, allow_close_start=True)  # a fixed scale
    times, cpu, values = run_observers(shared, frames, updates, lr)
    separate = [
        PairwiseLipschitzObserver(cache=NeighbourCache(k=6)),
        LemmaObserver("pairwise", cache=NeighbourCache(k=6)),
        MergeObserver(0.01, cache=NeighbourCache(k=6), allow_close_start=True),
    ]
    peer, _, _ = run_observers(separate, frames, updates, lr)
    steady, steady_peer = np.median(times[1:]), np.median(peer[1:])
    k, lemma, merges = values
    print(
        f"[pairs] N={n:,} D=3 k=6 eps=0.01: {shared[0].cache.n_built} neighbour builds for "
        f"{len(frames)} configurations"
    )
    print(
        f"[pairs] step 0 (one configuration): {times[0]:.2f} s; per step after: "
        f"median {steady:.2f} s over {len(times) - 1} steps "
        f"(all: {', '.join(f'{t:.2f}' for t in times)}); CPU time of the process per step "
        f"(all threads; on a loaded machine the steadier figure): "
        f"{', '.join(f'{t:.2f}' for t in cpu)}"
    )
    print(
        f"[pairs] peer, one cache per observer: median {steady_peer:.2f} s per step "
        f"-> shared is {steady_peer / steady:.2f}x faster"
    )
    print(
        f"[pairs] last step: K={k['K']:.4g} over {k['n_pairs']:,} pairs, eta*K={k['eta_K']:.3g}, "
        f"ratios [{lemma['min_ratio']:.4f}, {lemma['max_ratio']:.4f}], "
        f"violations={lemma['n_violations']}, atoms={merges['n_atoms']:,}, "
        f"merges={merges['n_merges']}, merged mass={merges['merged_mass']:.3g}"
    )
    return steady


def power_iteration(hvp, n, tol, v0, max_hvp=600):
    v = v0 / np.linalg.norm(v0)
    for count in range(1, max_hvp + 1):
        hv = hvp(v)
        lam = v @ hv
        if np.linalg.norm(hv - lam * v) <= tol * abs(lam):
            return lam, count
        v = hv / np.linalg.norm(hv)
    return lam, max_hvp


def bench_sharpness(n_neurons, gd_steps, tol=1e-6):
    net, X, _ = teacher_student(n_neurons, d=2, batch=256, seed=0)
    hvp = net.hvp_flat(X)
    v = np.random.default_rng(1).standard_normal(X.size)
    start = time.perf_counter()
    for _ in range(5):
        hvp(v)
    per_hvp = (time.perf_counter() - start) / 5
    start = time.perf_counter()
    cold = top_eigenpairs(hvp, X.size, tol=tol)
    cold_time = time.perf_counter() - start
    lam_p, n_power = power_iteration(hvp, X.size, tol, v)
    print(
        f"[sharpness] teacher-student sigmoid net, N={n_neurons:,} neurons, d=2, B=256, "
        f"{X.size:,} parameters, tol={tol:g} (Ritz residual / |lambda|); "
        f"one HVP {per_hvp * 1e3:.1f} ms"
    )
    print(
        f"[sharpness] cold Lanczos: lambda_max={cold.lambda_max:.10g} in {cold.n_hvp} HVPs "
        f"({cold_time:.2f} s), residual/|lambda|={cold.residual / abs(cold.lambda_max):.1e}; "
        f"peer power iteration: {n_power} HVPs (lambda={lam_p:.10g}) -> "
        f"{n_power / cold.n_hvp:.1f}x more"
    )
    lr = 1.0 / cold.lambda_max
    vector, warm_counts, cold_counts = cold.eigenvector, [], []
    for _ in range(gd_steps):
        X = X - lr * net.grad(X)
        hvp = net.hvp_flat(X)
        warm = top_eigenpairs(hvp, X.size, tol=tol, v0=vector)
        fresh = top_eigenpairs(hvp, X.size, tol=tol)
        vector = warm.eigenvector
        warm_counts.append(warm.n_hvp)
        cold_counts.append(fresh.n_hvp)
    print(
        f"[sharpness] along {gd_steps} GD steps at eta=1/lambda_max: HVPs warm {warm_counts} "
        f"(median {np.median(warm_counts):g}) vs cold {cold_counts} "
        f"(median {np.median(cold_counts):g})"
    )
    return cold.n_hvp


def _median_time(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def bench_hvp(n_neurons, samples, repeats=7):
    from particledyn.kernels.two_layer_reference import hessian_vector_reference

    rng = np.random.default_rng(0)
    inputs, targets = 2.0 * rng.standard_normal((samples, 2)), rng.standard_normal(samples)
    kernel = TwoLayerNet(inputs, targets, "sigmoid", "mse", "standard")
    x, v = rng.standard_normal((n_neurons, 3)), rng.standard_normal((n_neurons, 3))
    masses = np.full(n_neurons, 1.0 / n_neurons)
    context = kernel.evaluation_context()
    kernel.hvp(x, masses, context, v)  # compile (or load from the cache)
    ours, product = _median_time(lambda: kernel.hvp(x, masses, context, v), repeats)
    numpy_time, expected = _median_time(
        lambda: hessian_vector_reference(x, masses, inputs, targets, "sigmoid", "standard", "mse", v),
        max(3, repeats // 2),
    )
    error = np.max(np.abs(product - expected)) / np.max(np.abs(expected))
    print(
        f"[hvp] two-layer sigmoid net, MSE, N={n_neurons:,}, d=2, {samples:,} samples, float64: "
        f"fused loops {ours * 1e3:.1f} ms; numpy reference {numpy_time * 1e3:.1f} ms "
        f"({numpy_time / ours:.1f}x); max relative difference {error:.1e}"
    )
    try:
        import torch
    except ImportError:
        print("[hvp] PyTorch not installed: no PyTorch peer")
        return
    z, y = torch.tensor(inputs), torch.tensor(targets)
    xt, vt = torch.tensor(x, requires_grad=True), torch.tensor(v)

    def torch_hvp():
        loss = ((torch.sigmoid(xt[:, :2] @ z.T).T @ xt[:, 2] - y) ** 2).mean()
        (grad,) = torch.autograd.grad(loss, xt, create_graph=True)
        return torch.autograd.grad(grad, xt, grad_outputs=vt)[0].numpy()

    torch_hvp()
    torch_time, peer = _median_time(torch_hvp, repeats)
    error = np.max(np.abs(product - peer)) / np.max(np.abs(peer))
    print(
        f"[hvp] PyTorch {torch.__version__} double backward (threads={torch.get_num_threads()}): "
        f"{torch_time * 1e3:.1f} ms -> {torch_time / ours:.1f}x ours; max relative difference {error:.1e}"
    )


def bench_scale(n, kind, workers=-1):
    rng = np.random.default_rng(0)
    X0 = rng.uniform(0.0, 5.0, (n, 3)) if kind == "spread" else 1e-4 * rng.standard_normal((n, 3))
    U = field(X0)
    X1 = X0 + 1e-3 * U
    masses = np.full(n, 1.0 / n)
    cache = NeighbourCache(k=6, workers=workers)
    k_obs, merges = (
        PairwiseLipschitzObserver(cache=cache),
        MergeObserver(0.01, cache=cache, allow_close_start=True),
    )
    infos = [
        StepInfo(step=0, time=0.0, positions=X0, masses=masses, lr=1e-3),
        StepInfo(
            step=1, time=1e-3, positions=X1, masses=masses, lr=1e-3, previous_positions=X0, update=U, field=U
        ),
    ]
    merges.observe(infos[0])  # the start's atoms (x(t)'s pairs, reused as x(t-1)'s below)
    start = time.perf_counter()
    k = k_obs.observe(infos[1])
    k_time = time.perf_counter() - start
    start = time.perf_counter()
    m = merges.observe(infos[1])
    m_time = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"[scale] N={n:,} D=3 {kind}: pairwise K {k_time:.1f} s per call (x(t-1)'s k-d tree and "
        f"6-NN lists reused from the start), merges {m_time:.1f} s per call (x(t)'s tree, lists, atoms "
        f"at eps=0.01, pair counts); K={k['K']:.4g}, atoms={m['n_atoms']:,}, close pairs="
        f"{m['n_close_pairs']:,}; peak memory of the process so far {peak:.2f} GiB"
    )
    return k_time, m_time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10**6, help="particles for the pair diagnostics")
    parser.add_argument("--steps", type=int, default=4, help="steps for the pair diagnostics")
    parser.add_argument("--neurons", type=int, default=10**4, help="neurons for lambda_max")
    parser.add_argument("--gd-steps", type=int, default=5, help="GD steps for warm starts")
    parser.add_argument("--hvp-neurons", type=int, default=4000, help="neurons for one HVP")
    parser.add_argument("--hvp-samples", type=int, default=3500, help="samples for one HVP")
    parser.add_argument("--only", choices=("pairs", "sharpness", "hvp", "scale"), help="one part")
    parser.add_argument("--scale-n", default="1000000,10000000", help="N of part 4, comma-separated")
    args = parser.parse_args()
    if args.only == "scale":
        for n in (int(v) for v in args.scale_n.split(",")):
            for kind in ("spread", "collapsed"):
                bench_scale(n, kind)
        return
    if args.only in (None, "pairs"):
        bench_pairs(args.n, args.steps)
    if args.only == "pairs":
        return
    if args.only in (None, "sharpness"):
        bench_sharpness(args.neurons, args.gd_steps)
    if args.only in (None, "hvp"):
        bench_hvp(args.hvp_neurons, args.hvp_samples)


if __name__ == "__main__":
    main()
