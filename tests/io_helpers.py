"""Deterministic frames and observables shared by the I/O tests and their writer subprocesses."""

import numpy as np

N, D = 40, 3


def frame(k: int) -> np.ndarray:
    return np.arange(N * D, dtype=np.float64).reshape(N, D) * 1e-3 + k


def observables(k: int) -> dict:
    return {
        "scalar": float(k) * 0.5,
        "fixed": np.array([k, 2 * k, 3 * k]),
        "ragged": np.full((k % 4, 2), float(k)),
    }


def checkpoint(k: int) -> dict:
    return {"step": k, "positions": frame(k), "rng": {"state": 2**100 + k, "name": "PCG64"}}


WRITER_SCRIPT = r"""
import sys, time
sys.path.insert(0, sys.argv[2])
from io_helpers import frame, observables, checkpoint
from particledyn.io import H5MDSink

path, n_steps, pause = sys.argv[1], int(sys.argv[3]), float(sys.argv[4])
sink = H5MDSink(path, {"seed": 7, "scenario_toml": "steps = 10\n"})
for k in range(n_steps):
    sink.write_frame(k, 0.5 * k, frame(k), {"velocity": -frame(k)})
    sink.write_observables("obs", k, 0.5 * k, observables(k))
    if k % 3 == 0:
        sink.write_checkpoint(checkpoint(k))
    if k == 1:
        print("live", flush=True)
    if pause:
        time.sleep(pause)
sink.close(finished=True)
"""
