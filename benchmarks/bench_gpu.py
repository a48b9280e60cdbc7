"""GPU throughput: one full-batch GD step of the two-layer sigmoid teacher-student net.

N = 10^7 particles (neurons), B = 128, d = 2 (particles in R^3), float64 and
float32, on the particledyn GPU backend (numba.cuda kernels on cupy arrays)
and, in the same run, on PyTorch eager CUDA doing the same math (forward
F = sigma(W Z^T)^T a, G = dL/dF, the per-neuron gradient, the update). PyTorch
materialises N x B intermediates, so it runs over particle chunks of 2^21
(both passes) to fit in memory. Then N = 10^8 (particledyn only).

Prints particle-steps per second (median of repeats), the ratio to PyTorch,
and the fraction of the device's memory bandwidth and arithmetic peak reached,
from the estimated bytes moved and flops per step (see ``step_costs``).
Without a GPU it says so and exits 0.

    python benchmarks/bench_gpu.py [--sizes 10000000 100000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

EXP_FLOPS = 12
"""Flops counted for one libdevice exp (a range reduction and a degree ~11 polynomial)."""


def step_costs(n, batch, d, n_out, itemsize):
    """(bytes moved, flops) of one GD step of the fused kernels.

    Bytes: positions read by forward and by field, the field written, GD reads
    positions and field and writes the direction, the update reads both and
    writes positions: 9 N D itemsize (the batch, G and partial sums are small).
    Flops per (particle, batch entry): forward 2d (pre-activation) + exp + 4
    (sigmoid) + 2 n_out (accumulate); field 2d + exp + 5 + 2 n_out (G.a) +
    2 n_out + 2d (the two reductions).
    """
    dim = d + n_out
    bytes_moved = 9 * n * dim * itemsize
    per_pair = (2 * d + EXP_FLOPS + 4 + 2 * n_out) + (4 * d + EXP_FLOPS + 5 + 4 * n_out)
    return bytes_moved, n * batch * per_pair


def device_peaks(cupy):
    """(name, bytes/s, fp64 flop/s, fp32 flop/s) of device 0 from its attributes."""
    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    attr = cupy.cuda.runtime.deviceGetAttribute
    clock_khz = attr(13, 0)  # cudaDevAttrClockRate
    mem_clock_khz = attr(36, 0)  # cudaDevAttrMemoryClockRate
    bus_bits = attr(37, 0)  # cudaDevAttrGlobalMemoryBusWidth
    sms = attr(16, 0)  # cudaDevAttrMultiProcessorCount
    major = props["major"]
    bandwidth = 2.0 * mem_clock_khz * 1e3 * bus_bits / 8
    # FMA units per SM: P100/V100/A100 32 fp64 + 64 fp32, H100/B100 64 + 128, others 2 + 128
    fp64_per_sm, fp32_per_sm = {
        (6, 0): (32, 64),
        (7, 0): (32, 64),
        (8, 0): (32, 64),
        (9, 0): (64, 128),
        (10, 0): (64, 128),
    }.get((major, props["minor"]), (2, 128))
    return (
        name,
        bandwidth,
        2.0 * fp64_per_sm * sms * clock_khz * 1e3,
        2.0 * fp32_per_sm * sms * clock_khz * 1e3,
    )


def median_time(step, synchronize, repeats):
    step()
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def particledyn_step(net, backend, x, m):
    from particledyn import GD
    from particledyn.optimizers_cuda import apply_step

    kernel = net.to_device(backend)
    optimizer = GD().to_device(backend)
    ctx = net.evaluation_context()

    def step():
        field = kernel.field(x, m, ctx)
        direction = optimizer.direction(x, field, {}, 0)
        apply_step(backend, x, direction, 0.01)

    return step


def torch_step(torch, w, a, z, y, chunk=2**21):
    n = w.shape[0]
    batch = z.shape[0]

    def step():
        with torch.no_grad():
            out = torch.zeros(batch, dtype=w.dtype, device=w.device)
            for lo in range(0, n, chunk):
                out += torch.sigmoid(w[lo : lo + chunk] @ z.T).T @ a[lo : lo + chunk]
            g = 2.0 * (out - y) / batch
            for lo in range(0, n, chunk):
                s = torch.sigmoid(w[lo : lo + chunk] @ z.T)
                grad_a = s @ g
                q = (a[lo : lo + chunk, None] * g[None, :]) * s * (1 - s)
                grad_w = q @ z
                w[lo : lo + chunk] -= 0.01 * grad_w
                a[lo : lo + chunk] -= 0.01 * grad_a

    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10**7, 10**8])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    from particledyn.backends import GpuUnavailableError, get_backend

    try:
        backend = get_backend("cupy")
    except GpuUnavailableError as error:
        print(f"bench_gpu: no GPU here, nothing measured ({error})")
        return 0
    import cupy

    from particledyn.kernels import TwoLayerNet

    try:
        import torch

        if not torch.cuda.is_available():
            torch = None
    except ImportError:
        torch = None
    name, bandwidth, fp64_peak, fp32_peak = device_peaks(cupy)
    print(
        f"device: {name}; peaks from attributes: {bandwidth / 1e12:.2f} TB/s, "
        f"fp64 {fp64_peak / 1e12:.1f} TFLOP/s, fp32 {fp32_peak / 1e12:.1f} TFLOP/s (no tensor cores)"
    )
    d, batch = 2, args.batch
    rng = np.random.default_rng(0)
    z = rng.normal(size=(batch, d))
    y = 1.0 / (1.0 + np.exp(-z @ np.array([1.0, -0.5])))
    net = TwoLayerNet(z, y, activation="sigmoid", loss="mse", scaling="standard")
    print(
        f"{'N':>10} {'dtype':>8} {'particledyn s':>14} {'Mparticle-steps/s':>18} {'torch s':>9} "
        f"{'ratio':>7} {'GB/s (% peak)':>15} {'GFLOP/s (% peak)':>18}"
    )
    for n in args.sizes:
        for dtype in (np.float64, np.float32):
            try:
                x = cupy.asarray(rng.normal(size=(n, d + 1)) * 0.1, dtype=dtype)
                m = cupy.full(n, 1.0 / n)
            except cupy.cuda.memory.OutOfMemoryError:
                print(f"{n:>10} {np.dtype(dtype).name:>8} does not fit in device memory")
                continue
            ours = median_time(particledyn_step(net, backend, x, m), backend.synchronize, args.repeats)
            theirs = float("nan")
            if torch is not None and n <= 10**7:
                tw = torch.as_tensor(x[:, :d], device="cuda").clone()
                ta = torch.as_tensor(x[:, d], device="cuda").clone()
                tz = torch.as_tensor(z, dtype=tw.dtype, device="cuda")
                ty = torch.as_tensor(y, dtype=tw.dtype, device="cuda")
                theirs = median_time(torch_step(torch, tw, ta, tz, ty), torch.cuda.synchronize, args.repeats)
                del tw, ta
            bytes_moved, flops = step_costs(n, batch, d, 1, np.dtype(dtype).itemsize)
            peak = fp64_peak if dtype == np.float64 else fp32_peak
            print(
                f"{n:>10} {np.dtype(dtype).name:>8} {ours:>14.4f} {n / ours / 1e6:>18.1f} {theirs:>9.4f} "
                f"{theirs / ours:>7.1f} {bytes_moved / ours / 1e9:>8.0f} ({100 * bytes_moved / ours / bandwidth:3.0f}%)"
                f" {flops / ours / 1e9:>10.0f} ({100 * flops / ours / peak:3.0f}%)"
            )
            del x, m
            cupy.get_default_memory_pool().free_all_blocks()
    if torch is None:
        print("PyTorch with CUDA is not installed here: no peer column (pip install torch)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
