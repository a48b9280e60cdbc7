"""particledyn chooses numba's threading layer and OpenMP's wait policy at import; the environment wins."""

import json
import os
import subprocess
import sys

import pytest

from particledyn import threads

PROBE = (
    "import json, numba, os, particledyn\n"
    "from particledyn.threads import threading_choice\n"
    "f = numba.njit(parallel=True)(lambda x: x.sum())\n"
    "import numpy as np; f(np.ones(10))\n"
    "print(json.dumps({**threading_choice(), 'running': numba.threading_layer(),\n"
    "                  'config': numba.config.THREADING_LAYER,\n"
    "                  'env': os.environ['OMP_WAIT_POLICY']}))"
)


def _probe(**env_update):
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_THREADING_LAYER", "OMP_WAIT_POLICY")}
    env.update(env_update)
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_defaults_are_the_documented_ones():
    assert threads.DEFAULT_LAYER == "omp" and threads.DEFAULT_WAIT_POLICY == "PASSIVE"
    assert "OMP_WAIT_POLICY=PASSIVE" in threads.__doc__


def test_import_sets_the_layer_and_the_wait_policy():
    choice = _probe()
    assert choice["running"] == threads.DEFAULT_LAYER
    assert choice["env"] == choice["wait_policy"] == threads.DEFAULT_WAIT_POLICY
    assert choice["layer_source"] == choice["wait_policy_source"] == "particledyn"


@pytest.mark.parametrize("layer,policy", [("workqueue", "ACTIVE"), ("omp", "ACTIVE")])
def test_the_environment_overrides_both(layer, policy):
    choice = _probe(NUMBA_THREADING_LAYER=layer, OMP_WAIT_POLICY=policy)
    assert choice["running"] == choice["layer"] == layer
    assert choice["env"] == choice["wait_policy"] == policy
    assert choice["layer_source"] == choice["wait_policy_source"] == "environment"


def test_numba_imported_first_still_gets_the_layer():
    # numba imported before particledyn re-reads the changed environment before it compiles
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_THREADING_LAYER", "OMP_WAIT_POLICY")}
    probe = PROBE.replace("import json, numba, os, particledyn", "import numba\nimport json, os, particledyn")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    first = json.loads(out.stdout.strip().splitlines()[-1])
    assert first["config"] == first["running"] == threads.DEFAULT_LAYER


def test_run_threads_set_blas_too_and_are_restored():
    """A run's thread count limits BLAS as well (observers' matrix products), and is undone after."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from particledyn.runner import _ThreadsRestored, set_threads

    def blas():
        return {
            info["filepath"]: info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"
        }

    import numpy  # noqa: F401  (loads a BLAS)

    with threadpool_limits(limits=2, user_api="blas"):
        before = blas()
        assert before and set(before.values()) == {2}
        with _ThreadsRestored():
            assert set_threads(1) == 1
            assert set(blas().values()) == {1}
        assert blas() == before
