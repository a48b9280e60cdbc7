"""Files of layout 1.0 (array observables under observables/ with an index) still read and resume."""

import h5py
import numpy as np

from particledyn.io import open_run
from particledyn.io.integrity import record_checksum
from particledyn.summary import read_series


def _series(group, steps, values, ragged):
    group.create_dataset("step", data=np.asarray(steps, np.int64), maxshape=(None,), chunks=(64,))
    times = 0.5 * np.asarray(steps, np.float64)
    group.create_dataset("time", data=times, maxshape=(None,), chunks=(64,))
    sums = [record_checksum(s, t, np.ascontiguousarray(v)) for s, t, v in zip(steps, times, values)]
    group.create_dataset("checksum", data=np.asarray(sums, np.uint32), maxshape=(None,), chunks=(64,))
    if ragged:
        flat = np.concatenate(values)
        stops = np.cumsum([len(v) for v in values])
        group.create_dataset(
            "value", data=flat, maxshape=(None,) + flat.shape[1:], chunks=(64,) + flat.shape[1:]
        )
        group.create_dataset(
            "index",
            data=np.stack([stops - [len(v) for v in values], stops], axis=1),
            maxshape=(None, 2),
            chunks=(64, 2),
        )
    else:
        group.create_dataset("value", data=np.asarray(values), maxshape=(None,), chunks=(64,))


def write_old_layout(path, steps=(0, 1, 2)):
    """A file as the writer of layout 1.0 made it (the parts the reader needs)."""
    diagrams = [np.full((k + 1, 3), float(k)) for k in steps]
    with h5py.File(path, "w", libver="latest") as f:
        f.attrs["finished"] = True
        f.create_group("h5md").attrs["version"] = np.array([1, 1], np.int32)
        module = f.create_group("h5md/modules/particledyn")
        module.attrs.update(
            {
                "version": np.array([1, 0], np.int32),
                "particle_group": "all",
                "every": 1,
                "dtype": "",
                "optimizer_state": True,
                "compression": "",
            }
        )
        module.create_dataset("finished", data=np.array([1], np.int8), maxshape=(1,), chunks=(1,))
        positions = [np.full((4, 2), float(k)) for k in steps]
        particles = f.create_group("particles/all")
        particles.create_dataset("id", data=np.arange(4))
        pos = particles.create_group("position")
        pos.create_dataset("step", data=np.asarray(steps, np.int64), maxshape=(None,), chunks=(64,))
        pos.create_dataset("time", data=0.5 * np.asarray(steps, float), maxshape=(None,), chunks=(64,))
        pos.create_dataset("value", data=np.stack(positions), maxshape=(None, 4, 2), chunks=(1, 4, 2))
        _series(f.create_group("observables/betti/loss"), steps, [float(k) for k in steps], False)
        _series(f.create_group("observables/betti/diagram"), steps, diagrams, True)
        f.create_group("parameters").attrs["seed"] = 1
        ckpt = f.create_group("checkpoint")
        for slot in range(2):
            ckpt.create_dataset(f"slot_{slot}", shape=(0,), maxshape=(None,), dtype=np.uint8, chunks=(64,))
        ckpt.create_dataset("header", data=np.full((2, 4), -1, np.int64))
    return diagrams


def test_old_layout_reads_through_run_summaries_and_exports(tmp_path):
    path = tmp_path / "old.h5"
    diagrams = write_old_layout(path)
    with open_run(path) as run:
        assert run.observables == {"betti": ["diagram", "loss"]}
        assert run.series("betti", "diagram").name == "/observables/betti/diagram"
        steps, values = run.observable("betti", "diagram")
        np.testing.assert_array_equal(steps, [0, 1, 2])
        assert all(np.array_equal(a, b) for a, b in zip(values, diagrams))
        assert run.damaged() == {}
        assert list(run.to_pandas().key.unique()) == ["loss"]  # the ragged key is not a scalar
        np.testing.assert_array_equal(run.to_xarray()["betti.loss"], [0.0, 1.0, 2.0])
        found = read_series(run, "betti", "diagram")
        assert found is not None and len(found[1]) == 3
        # no observer types recorded then: each observer is of the type its name says
        assert run.observer_descriptions == {"betti": {"type": "betti"}}
        assert run.observers_of_type("betti") == ["betti"]
