"""Public names are what they say (functions, not modules); writer liveness is decided in one place."""

import dataclasses
import os
import socket
import subprocess
import sys

import pytest

from particledyn.io.locking import (
    HOST_ATTR,
    PID_ATTR,
    WriteLock,
    stamped_writer_alive,
    writer_alive,
    writer_stamp,
)
from particledyn.state import ParticleState


def test_kernel_sharpness_from_the_geometry_package_is_the_function():
    from particledyn.geometry import KernelSharpnessObserver, kernel_sharpness

    observer = kernel_sharpness(every=5, k=2)
    assert isinstance(observer, KernelSharpnessObserver)
    assert observer.every == 5 and observer.k == 2
    import particledyn.geometry as geometry

    assert geometry.kernel_sharpness is kernel_sharpness  # no submodule shadows it


def test_the_particle_state_has_no_unused_fields():
    names = [f.name for f in dataclasses.fields(ParticleState)]
    assert names == ["positions", "masses", "optimizer_state", "step", "time", "seed"]


@pytest.fixture()
def sleeper():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process.pid
    process.kill()
    process.wait()


def test_a_held_lock_means_a_live_writer(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    assert not writer_alive(path, {})
    lock = WriteLock(path).acquire()
    try:
        assert writer_alive(path, {}) and writer_alive(path, {}, takes_locks=False)
    finally:
        lock.release()
    assert not writer_alive(path, {})


def test_a_stamped_pid_counts_only_for_writers_that_took_no_lock(tmp_path, sleeper):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    here = {PID_ATTR: sleeper, HOST_ATTR: socket.gethostname()}
    assert stamped_writer_alive(here)
    assert writer_alive(path, here, takes_locks=False)
    assert not writer_alive(path, here, takes_locks=True)  # the lock, not the PID, decides


def test_a_stamped_pid_of_this_process_or_another_host_or_a_dead_one_is_not_a_writer(sleeper):
    host = socket.gethostname()
    assert writer_stamp() == {PID_ATTR: os.getpid(), HOST_ATTR: host}
    assert not stamped_writer_alive(writer_stamp())
    assert not stamped_writer_alive({PID_ATTR: sleeper, HOST_ATTR: host + "-elsewhere"})
    assert not stamped_writer_alive({})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert not stamped_writer_alive({PID_ATTR: dead.pid, HOST_ATTR: host})
