"""Ensemble files: replica i read through Run.replica(i) equals its single run's file; exact resume;
SIGINT stops at a step boundary after its checkpoint."""

import os
import signal

import numpy as np
import pytest

from particledyn import Adam, Simulation
from particledyn.divergence import divergence_of
from particledyn.ensemble import Ensemble
from particledyn.interrupts import Interrupted
from particledyn.io import H5MDSink, open_run
from particledyn.kernels import TwoLayerNet
from particledyn.observers import LossObserver, Observer

LRS, SEEDS = [0.002, 1e150, 0.004], [3, 4, 5]


def kernel():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(80, 2))
    return TwoLayerNet(z, np.tanh(z @ [1.0, -0.5]), activation="relu")


def starts():
    return np.random.default_rng(1).normal(size=(3, 30, 3))


def ensemble(sink, observers=(), **options):
    return Ensemble(
        kernel(),
        starts(),
        optimizer=Adam(),
        lr=LRS,
        seed=SEEDS,
        batch_size=20,
        sink=sink,
        observers=[LossObserver(every=2), *observers],
        frame_every=3,
        **options,
    )


def single_file(path, r, steps):
    sim = Simulation(
        kernel(),
        starts()[r],
        optimizer=Adam(),
        lr=LRS[r],
        seed=SEEDS[r],
        batch_size=20,
        sink=H5MDSink(path),
        observers=[LossObserver(every=2)],
        frame_every=3,
    )
    try:
        sim.run(steps, progress=False)
        sim.close()
    except FloatingPointError:
        pass
    return path


def assert_same_run(view, run):
    np.testing.assert_array_equal(view.steps, run.steps)
    np.testing.assert_array_equal(view.times, run.times)
    np.testing.assert_array_equal(view.positions(), run.positions())
    np.testing.assert_array_equal(view.positions(name="adam_v"), run.positions(name="adam_v"))
    assert view.observables == run.observables
    for key in run.observables["loss"]:
        for got, want in zip(view.observable("loss", key), run.observable("loss", key)):
            np.testing.assert_array_equal(got, want)
    got, want = view.checkpoint(), run.checkpoint()
    for key in ("step", "time", "diverged"):
        assert got.get(key) == want.get(key)
    np.testing.assert_array_equal(got["positions"], want["positions"])
    assert divergence_of(got) == divergence_of(want)


def test_each_replica_reads_as_its_single_run(tmp_path):
    ens = ensemble(H5MDSink(str(tmp_path / "ens.h5")))
    ens.run(10, progress=False)
    ens.close()
    assert list(ens.diverged) == [1]
    with open_run(str(tmp_path / "ens.h5")) as run:
        assert run.positions(0).shape == (90, 3)
        for r in range(3):
            with open_run(single_file(str(tmp_path / f"single{r}.h5"), r, 10)) as alone:
                assert_same_run(run.replica(r), alone)
        with pytest.raises(IndexError, match=r"replica 3: expected an integer in \[0, 3\)"):
            run.replica(3)
    with open_run(single_file(str(tmp_path / "plain.h5"), 0, 2)) as plain:
        with pytest.raises(ValueError, match="is not an ensemble file"):
            plain.replica(0)


def test_resume_from_the_file_is_bit_identical(tmp_path):
    whole = ensemble(None)
    whole.run(11, progress=False)
    path = str(tmp_path / "cut.h5")
    cut = ensemble(H5MDSink(path), checkpoint_every=4)
    cut.run(6, progress=False)
    cut.sink.close(finished=False)  # a run killed after step 6: the file's checkpoint is at step 4
    sink, checkpoint = H5MDSink.resume(path)
    assert checkpoint["step"] == 4
    resumed = ensemble(sink).restore(checkpoint)
    resumed.run(7, progress=False)
    np.testing.assert_array_equal(resumed.positions, whole.positions)
    np.testing.assert_array_equal(resumed.optimizer_state["adam_m"], whole.optimizer_state["adam_m"])
    assert resumed.diverged == whole.diverged
    resumed.close()
    with open_run(path) as run:
        steps, loss = run.replica(2).observable("loss", "loss")
        np.testing.assert_array_equal(loss, whole.sink.series("loss@r2", "loss")[1])


class SignalAt(Observer):
    name = "signal"

    def __init__(self, step):
        super().__init__(1)
        self.at = step

    def observe(self, info):
        if info.step == self.at:
            os.kill(os.getpid(), signal.SIGINT)
        return {}


def test_sigint_stops_at_the_step_boundary_after_its_checkpoint(tmp_path):
    path = str(tmp_path / "int.h5")
    ens = Ensemble(
        kernel(),
        starts(),
        lr=0.003,
        seed=SEEDS,
        sink=H5MDSink(path),
        observers=lambda r: [LossObserver(every=2)] + ([SignalAt(5)] if r == 0 else []),
    )
    with pytest.raises(Interrupted, match="after step 5"):
        ens.run(20, progress=False)
    with open_run(path) as run:
        assert run.checkpoint()["step"] == 5 and not run.finished
        assert run.replica(1).checkpoint()["step"] == 5
    whole = Ensemble(kernel(), starts(), lr=0.003, seed=SEEDS, observers=[LossObserver(every=2)])
    whole.run(9, progress=False)
    sink, checkpoint = H5MDSink.resume(path)
    resumed = Ensemble(
        kernel(),
        starts(),
        lr=0.003,
        seed=SEEDS,
        sink=sink,
        observers=lambda r: [LossObserver(every=2)] + ([SignalAt(-1)] if r == 0 else []),
    )
    resumed.restore(checkpoint).run(4, progress=False)
    np.testing.assert_array_equal(resumed.positions, whole.positions)
    resumed.close()


def test_restore_refuses_another_ensemble_size(tmp_path):
    ens = ensemble(None)
    with pytest.raises(ValueError, match="checkpoint of 2 replicas: expected an ensemble checkpoint of 3"):
        ens.restore({**ens.checkpoint(), "ensemble": {**ens.checkpoint()["ensemble"], "replicas": 2}})
    with pytest.raises(ValueError, match="checkpoint of None replicas"):
        ens.restore({"step": 0})
