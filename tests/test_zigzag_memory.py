"""The zigzag observer's memory and checkpoint state do not grow with the frames; resume stays exact."""

import os
import signal
import tracemalloc

import numpy as np

from particledyn import Simulation
from particledyn.cli import main
from particledyn.io import H5MDSink, open_run
from particledyn.io.checkpoint_codec import encode_checkpoint
from particledyn.kernels import TwoLayerNet
from particledyn.observers import StepInfo
from particledyn.sinks import Sink
from particledyn.topology import ZigzagObserver, zigzag_barcode


def test_state_and_memory_do_not_grow_with_the_frames():
    obs = ZigzagObserver(every=1, scale=0.3)
    x = np.random.default_rng(0).normal(size=(500, 2))
    discard = Sink()
    sizes = []
    tracemalloc.start()
    try:
        for step in range(201):
            values = obs.observe(StepInfo(step=step, time=0.0, positions=x, masses=np.ones(500), lr=0.1))
            discard.write_observables(obs.name, step, 0.0, values)
            del values
            if step in (10, 200):
                sizes.append(len(encode_checkpoint(obs.state_dict())))
            if step == 10:
                held = tracemalloc.get_traced_memory()[0]
        grown = tracemalloc.get_traced_memory()[0] - held
    finally:
        tracemalloc.stop()
    assert sizes[0] == sizes[1]  # 8 kB per frame before
    assert grown < 50_000, grown  # 190 frames of 8 kB held before: 1.5 MB
    assert obs.state_dict() == {"n_frames": 201}


def test_barcode_reads_the_frames_from_the_run_file(tmp_path):
    rng = np.random.default_rng(1)
    z = rng.normal(size=(40, 1))
    kernel = TwoLayerNet(z, np.sin(z[:, 0]), scaling="mean_field")
    theta = np.linspace(0, 2 * np.pi, 30, endpoint=False)
    x = np.column_stack([np.cos(theta), np.sin(theta)])
    obs = ZigzagObserver(every=3, scale=0.5, max_dim=1)
    path = tmp_path / "run.h5"
    sim = Simulation(kernel, x, lr=0.5, observers=[obs], sink=H5MDSink(path), frame_every=3)
    sim.run(9, progress=False)
    sim.close()
    with open_run(path) as run:
        frames = [run.positions(s) for s in (0, 3, 6, 9)]
        steps, stored = obs.frames(run)
    assert steps.tolist() == [0, 3, 6, 9]
    assert all(np.array_equal(a, b) for a, b in zip(stored, frames))
    assert np.array_equal(obs.barcode(), zigzag_barcode(frames, 0.5, 1))  # the simulation's sink
    assert sim.checkpoint()["observers"]["zigzag"] == {"n_frames": 4}


SCENARIO = """\
[run]
steps = 12
seed = 4
threads = 1
[data]
kind = "teacher_student"
d = 1
n = 40
[init]
shape = "genus_region"
n = 40
[schedule]
lr = 0.05
[output]
checkpoint_every = 0
[[observers]]
type = "zigzag"
every = 2
scale = 0.3
"""


def test_an_interrupted_run_resumes_to_the_same_barcode(tmp_path, monkeypatch, capsys):
    scenario = tmp_path / "z.toml"
    scenario.write_text(SCENARIO)
    reference, cut = str(tmp_path / "reference.h5"), str(tmp_path / "cut.h5")
    assert main(["run", str(scenario), "--out", reference, "--no-plots"]) == 0
    step = Simulation.step

    def interrupted(self):
        if self.state.step == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        return step(self)

    monkeypatch.setattr(Simulation, "step", interrupted)
    assert main(["run", str(scenario), "--out", cut, "--no-plots"]) == 130
    monkeypatch.undo()
    with open_run(cut) as run:
        assert run.checkpoint()["observers"]["zigzag"] == {"n_frames": 3}  # frames 0, 2, 4
    assert main(["run", "--resume", "--out", cut, "--no-plots"]) == 0
    capsys.readouterr()
    fresh = ZigzagObserver(every=2, scale=0.3)
    with open_run(cut) as a, open_run(reference) as b:
        assert a.observable("zigzag", "frame")[0].tolist() == list(range(0, 13, 2))
        assert np.array_equal(fresh.barcode(a), fresh.barcode(b))
        states = [run.checkpoint()["observers"]["zigzag"] for run in (a, b)]
        assert states == [{"n_frames": 7}] * 2
