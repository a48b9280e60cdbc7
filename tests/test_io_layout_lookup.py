"""observable_group: the direct lookup of one series finds what the scan of every series finds."""

import h5py
import numpy as np

from particledyn.io.layout import OBSERVABLES_ROOT, RAGGED_ROOT, observable_group, observable_groups


def _series(parent, path, marker):
    group = parent.create_group(path)
    for name in ("step", "time", "value"):
        group.create_dataset(name, data=np.array([marker]))
    return group


def test_the_lookup_agrees_with_the_scan(tmp_path):
    with h5py.File(tmp_path / "run.h5", "w") as file:
        _series(file, f"{OBSERVABLES_ROOT}/loss/loss", 1)
        _series(file, f"{OBSERVABLES_ROOT}/betti/count", 2)
        _series(file, f"{RAGGED_ROOT}/betti/count", 3)  # shadowed: the scalar home comes first
        _series(file, f"{RAGGED_ROOT}/betti/betti", 4)
        file.create_group(f"{OBSERVABLES_ROOT}/merges/events").create_dataset("step", data=[0])  # no series
        file.create_dataset(f"{OBSERVABLES_ROOT}/stray", data=[0])  # a dataset where an observer would be
        scanned = observable_groups(file)
        assert {name: sorted(keys) for name, keys in scanned.items()} == {
            "loss": ["loss"],
            "betti": ["betti", "count"],
            "merges": [],
        }
        for name, keys in scanned.items():
            for key, group in keys.items():
                assert observable_group(file, name, key) == group
        assert observable_group(file, "betti", "count")["value"][0] == 2
        for name, key in (("merges", "events"), ("stray", "x"), ("loss", "missing"), ("absent", "loss")):
            assert observable_group(file, name, key) is None


def test_a_file_without_observables_has_none(tmp_path):
    with h5py.File(tmp_path / "run.h5", "w") as file:
        assert observable_group(file, "loss", "loss") is None
