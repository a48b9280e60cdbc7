"""Skip-or-fail logic of the GPU-only tests, and the runner of the CUDA-simulator cases.

A test decorated with :func:`requires_gpu` runs when backend 'cupy' can be
created (cupy, a CUDA device, numba.cuda). Otherwise it is skipped with the
reason, or FAILS with it when ``PARTICLEDYN_REQUIRE_GPU=1`` is set (so a GPU
CI job cannot pass by skipping everything).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

REQUIRE_GPU_VARIABLE = "PARTICLEDYN_REQUIRE_GPU"
TESTS = Path(__file__).resolve().parent


def gpu_required() -> bool:
    """True when the environment says GPU tests must run."""
    return os.environ.get(REQUIRE_GPU_VARIABLE, "") == "1"


def gpu_unavailable_reason() -> str | None:
    """Why backend 'cupy' cannot run here, or None when it can."""
    from particledyn.backends import GpuUnavailableError, get_backend

    try:
        get_backend("cupy")
    except GpuUnavailableError as error:
        return str(error)
    return None


def requires_gpu(test):
    """Run ``test`` only on a machine with a usable GPU; skip otherwise, or fail under
    ``PARTICLEDYN_REQUIRE_GPU=1``."""

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        reason = gpu_unavailable_reason()
        if reason is not None:
            if gpu_required():
                pytest.fail(f"{REQUIRE_GPU_VARIABLE}=1 but no usable GPU: {reason}", pytrace=False)
            pytest.skip(f"needs a GPU: {reason}")
        return test(*args, **kwargs)

    return wrapper


def run_cudasim_cases(module: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the pytest module ``tests/<module>`` in a fresh interpreter with NUMBA_ENABLE_CUDASIM=1.

    The variable must be set before numba is imported, which in this process it already is.
    """
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(TESTS / module)]
    return subprocess.run(command, env=env, cwd=TESTS.parent, capture_output=True, text=True, timeout=timeout)
