"""Runs the GPU kernels' tests (tests/cudasim_cases.py) in numba's CUDA simulator, without a GPU."""

import re

from gpu_support import run_cudasim_cases


def test_gpu_kernels_in_the_cuda_simulator():
    result = run_cudasim_cases("cudasim_cases.py")
    report = result.stdout[-8000:] + result.stderr[-3000:]
    assert result.returncode == 0, report
    summary = result.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary), report
    assert not re.search(r"skipped|failed|error", summary), report
