"""Tests of particledyn.data: teacher-student, linear tasks, IDX/NPZ readers, digits, MNIST."""

import gzip
import struct

import numpy as np
import pytest

from particledyn import data


def plain_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# ---------------------------------------------------------------------------
# teacher-student (Appendix C.1)
# ---------------------------------------------------------------------------


def test_teacher_student_paper_defaults():
    ds = data.teacher_student(2, seed=0)
    assert (ds.n_train, ds.n_test, ds.input_dim) == (3500, 1500, 2)
    assert ds.z_train.dtype == np.float64 and ds.y_train.shape == (3500,) and ds.y_test.shape == (1500,)
    z = np.concatenate([ds.z_train, ds.z_test])
    # N(0, 4): mean std error 2/sqrt(5000) ~ 0.03, variance std error 4*sqrt(2/5000) ~ 0.08
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=0.12)
    np.testing.assert_allclose(z.var(axis=0), 4.0, atol=0.3)
    assert ds.info["teacher_a"].shape == (10,) and ds.info["teacher_w"].shape == (10, 2)
    # labels are the teacher's output, recomputed with a plain formula
    a, w = ds.info["teacher_a"], ds.info["teacher_w"]
    np.testing.assert_allclose(ds.y_train, plain_sigmoid(ds.z_train @ w.T) @ a, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ds.y_test, plain_sigmoid(ds.z_test @ w.T) @ a, rtol=1e-12, atol=1e-12)


def test_teacher_weight_scales():
    ds = data.teacher_student(3, n=10, teacher_width=4000, seed=1)
    # a* ~ N(0, 1), w* ~ N(0, 0.36): std errors ~0.011 and ~0.004
    assert ds.info["teacher_a"].std() == pytest.approx(1.0, abs=0.05)
    assert ds.info["teacher_w"].std() == pytest.approx(0.6, abs=0.02)
    assert abs(ds.info["teacher_w"].mean()) < 0.02


@pytest.mark.parametrize("activation,fn", [("tanh", np.tanh), ("relu", lambda x: np.maximum(x, 0))])
def test_other_teacher_activations(activation, fn):
    ds = data.teacher_student(1, n=400, activation=activation, seed=2)
    a, w = ds.info["teacher_a"], ds.info["teacher_w"]
    np.testing.assert_allclose(ds.y_train, fn(ds.z_train @ w.T) @ a, rtol=1e-12, atol=1e-12)
    assert ds.info["activation"] == activation


def test_sigmoid_extreme_inputs_finite():
    ds = data.teacher_student(1, n=50, input_std=1e4, seed=0)
    assert np.all(np.isfinite(ds.y_train))


def test_teacher_student_determinism_and_streams():
    a = data.teacher_student(2, n=300, seed=5)
    b = data.teacher_student(2, n=300, seed=5)
    c = data.teacher_student(2, n=300, seed=6)
    np.testing.assert_array_equal(a.z_train, b.z_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.allclose(a.z_train, c.z_train)
    # the teacher does not depend on n
    d = data.teacher_student(2, n=1000, seed=5)
    np.testing.assert_array_equal(a.info["teacher_w"], d.info["teacher_w"])
    np.testing.assert_array_equal(a.info["teacher_a"], d.info["teacher_a"])


def test_teacher_student_split_sizes():
    ds = data.teacher_student(1, n=101, train_fraction=0.5, seed=0)
    assert (ds.n_train, ds.n_test) == (50, 51)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"d": 0}, "d must be"),
        ({"d": 1.5}, "d must be"),
        ({"d": 2, "n": 1}, "n must be"),
        ({"d": 2, "train_fraction": 1.0}, "train_fraction"),
        ({"d": 2, "n": 3, "train_fraction": 0.01}, "empty"),
        ({"d": 2, "activation": "gelu"}, "activation"),
        ({"d": 2, "weight_std": 0}, "weight_std"),
        ({"d": 2, "teacher_width": 0}, "teacher_width"),
        ({"d": 2, "seed": -3}, "seed"),
    ],
)
def test_teacher_student_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.teacher_student(**kwargs)


# ---------------------------------------------------------------------------
# linear teacher tasks (Appendix C.3)
# ---------------------------------------------------------------------------


def test_linear_task_defaults_and_statistics():
    task = data.linear_teacher_task(1, seed=0)
    assert task.z_train.shape == (50000, 8) and task.y_train.shape == (50000, 8)
    assert task.z_test.shape == (10000, 8) and task.y_test.shape == (10000, 8)
    m = task.info["teacher_matrix"]
    assert m.shape == (8, 8)
    np.testing.assert_allclose(task.y_train, task.z_train @ m.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(task.z_train.mean(axis=0), 0.0, atol=0.02)
    np.testing.assert_allclose(task.z_train.var(axis=0), 1.0, atol=0.03)


def test_linear_task_matrix_scale():
    # M_ij ~ N(0, 1/d_in): pool many tasks' entries
    entries = np.concatenate(
        [
            data.linear_teacher_task(t, d_in=16, d_out=16, n_train=1, n_eval=1).info["teacher_matrix"].ravel()
            for t in range(20)
        ]
    )
    assert entries.var() == pytest.approx(1 / 16, rel=0.1)


def test_linear_task_determinism():
    a = data.linear_teacher_task(3, n_train=100, n_eval=20, seed=1)
    b = data.linear_teacher_task(3, n_train=100, n_eval=20, seed=1)
    np.testing.assert_array_equal(a.z_train, b.z_train)
    np.testing.assert_array_equal(a.info["teacher_matrix"], b.info["teacher_matrix"])
    other_task = data.linear_teacher_task(4, n_train=100, n_eval=20, seed=1)
    other_seed = data.linear_teacher_task(3, n_train=100, n_eval=20, seed=2)
    assert not np.allclose(a.info["teacher_matrix"], other_task.info["teacher_matrix"])
    assert not np.allclose(a.info["teacher_matrix"], other_seed.info["teacher_matrix"])
    assert not np.allclose(a.z_train, other_task.z_train)


def test_linear_task_bad_inputs():
    with pytest.raises(ValueError, match="task_index"):
        data.linear_teacher_task(-1)
    with pytest.raises(ValueError, match="d_out"):
        data.linear_teacher_task(0, d_out=0)


# ---------------------------------------------------------------------------
# IDX reader, on bytes written by hand
# ---------------------------------------------------------------------------


def idx_bytes(type_code, shape, payload):
    return bytes([0, 0, type_code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + payload


def test_read_idx_ubyte_by_hand(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "imgs-idx3-ubyte"
    path.write_bytes(idx_bytes(0x08, (2, 3, 4), images.tobytes()))
    got = data.read_idx(path)
    assert got.dtype == np.uint8 and got.shape == (2, 3, 4)
    np.testing.assert_array_equal(got, images)


def test_read_idx_big_endian_types(tmp_path):
    path = tmp_path / "ints"
    path.write_bytes(idx_bytes(0x0C, (3,), bytes.fromhex("00000102 ffffffff 7fffffff")))
    np.testing.assert_array_equal(data.read_idx(path), [258, -1, 2**31 - 1])
    path.write_bytes(idx_bytes(0x0B, (2,), bytes.fromhex("0100 fffe")))
    np.testing.assert_array_equal(data.read_idx(path), [256, -2])
    path.write_bytes(idx_bytes(0x0E, (1, 2), struct.pack(">2d", 1.5, -2.25)))
    got = data.read_idx(path)
    assert got.dtype == np.float64 and got.dtype.isnative
    np.testing.assert_array_equal(got, [[1.5, -2.25]])
    path.write_bytes(idx_bytes(0x0D, (1,), struct.pack(">f", 0.5)))
    np.testing.assert_array_equal(data.read_idx(path), np.array([0.5], dtype=np.float32))
    path.write_bytes(idx_bytes(0x09, (2,), bytes([0x80, 0x01])))
    np.testing.assert_array_equal(data.read_idx(path), np.array([-128, 1], dtype=np.int8))


def test_read_idx_gzip_by_magic(tmp_path):
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    path = tmp_path / "labels-no-gz-suffix"
    path.write_bytes(gzip.compress(idx_bytes(0x08, (5,), labels.tobytes())))
    np.testing.assert_array_equal(data.read_idx(path), labels)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a", "a.gz"])
def test_write_read_idx_roundtrip(tmp_path, dtype, name):
    arr = (np.arange(60).reshape(3, 4, 5) - 7).astype(dtype)
    data.write_idx(tmp_path / name, arr)
    assert (tmp_path / name).read_bytes()[:2] == (b"\x1f\x8b" if name.endswith(".gz") else b"\x00\x00")
    got = data.read_idx(tmp_path / name)
    assert got.dtype == arr.dtype
    np.testing.assert_array_equal(got, arr)


@pytest.mark.parametrize(
    "raw,match",
    [
        (b"\x00\x00\x08", "only 3 bytes"),
        (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "two zero bytes"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "unknown IDX type byte 0x07"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 2), "truncated IDX header"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"\x00\x01", "has 2 bytes but"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 1) + b"\x00\x01", "has 2 bytes but"),
        (b"\x00\x00\x0c\x01" + struct.pack(">I", 2) + b"\x00" * 7, "needs 8"),
        (b"\x1f\x8b\x08\x00garbage", "gzip"),
    ],
)
def test_read_idx_malformed(tmp_path, raw, match):
    path = tmp_path / "bad"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match=match):
        data.read_idx(path)


def test_write_idx_bad_dtype(tmp_path):
    with pytest.raises(ValueError, match="dtype"):
        data.write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))


# ---------------------------------------------------------------------------
# MNIST from user files
# ---------------------------------------------------------------------------


def tiny_mnist(seed=0, n_train=40, n_test=12, side=5):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        "y_train": (np.arange(n_train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        "y_test": (np.arange(n_test) % 10).astype(np.uint8),
    }


def write_idx_dir(directory, arrays, gz=False, dotted=False):
    names = {
        "x_train": "train-images-idx3-ubyte",
        "y_train": "train-labels-idx1-ubyte",
        "x_test": "t10k-images-idx3-ubyte",
        "y_test": "t10k-labels-idx1-ubyte",
    }
    for key, name in names.items():
        arr = arrays[key]
        raw = idx_bytes(0x08, arr.shape, arr.tobytes())
        if dotted:
            name = name.replace("-idx", ".idx")
        if gz:
            (directory / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (directory / name).write_bytes(raw)


@pytest.mark.parametrize("gz,dotted", [(False, False), (True, False), (False, True), (True, True)])
def test_load_mnist_idx_directory(tmp_path, gz, dotted):
    arrays = tiny_mnist()
    write_idx_dir(tmp_path, arrays, gz=gz, dotted=dotted)
    got = data.load_mnist(tmp_path)
    for key, arr in arrays.items():
        assert got[key].dtype == np.uint8
        np.testing.assert_array_equal(got[key], arr)


def test_load_mnist_npz(tmp_path):
    arrays = tiny_mnist(1)
    np.savez(tmp_path / "mnist.npz", **arrays)
    got = data.load_mnist(tmp_path / "mnist.npz")
    for key, arr in arrays.items():
        np.testing.assert_array_equal(got[key], arr)


def test_load_mnist_errors(tmp_path):
    arrays = tiny_mnist()
    with pytest.raises(FileNotFoundError, match="no such"):
        data.load_mnist(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        write_idx_dir(tmp_path, arrays)
        (tmp_path / "t10k-labels-idx1-ubyte").unlink()
        data.load_mnist(tmp_path)
    # label count differs from image count
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(0x08, (3,), bytes(3)))
    with pytest.raises(ValueError, match="12 images but y_test has 3 labels"):
        data.load_mnist(tmp_path)
    partial = {k: v for k, v in arrays.items() if k != "y_test"}
    np.savez(tmp_path / "partial.npz", **partial)
    with pytest.raises(ValueError, match=r"missing key\(s\) \['y_test'\]"):
        data.load_mnist(tmp_path / "partial.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="npz"):
        data.load_mnist(tmp_path / "junk.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(ValueError, match="single array"):
        data.load_mnist(tmp_path / "single.npy")
    bad = dict(arrays, y_train=arrays["y_train"].astype(np.float32))
    np.savez(tmp_path / "floatlabels.npz", **bad)
    with pytest.raises(ValueError, match="integer labels"):
        data.load_mnist(tmp_path / "floatlabels.npz")


def test_classification_dataset_mnist(tmp_path):
    arrays = tiny_mnist(2)
    np.savez(tmp_path / "m.npz", **arrays)
    ds = data.classification_dataset("mnist", path=tmp_path / "m.npz")
    assert ds.z_train.shape == (40, 25) and ds.z_test.shape == (12, 25)
    assert ds.z_train.dtype == np.float64 and ds.y_train.dtype == np.int64
    np.testing.assert_allclose(ds.z_train, arrays["x_train"].reshape(40, 25) / 255.0, rtol=0, atol=0)
    np.testing.assert_array_equal(ds.y_test, arrays["y_test"])
    assert ds.info["n_classes"] == 10 and ds.info["image_shape"] == (5, 5)
    sub = data.classification_dataset("mnist", path=tmp_path / "m.npz", n_train=20, seed=3)
    assert sub.n_train == 20
    assert np.all(np.bincount(sub.y_train, minlength=10) == 2)  # stratified
    rows = {row.tobytes() for row in ds.z_train}
    assert all(row.tobytes() in rows for row in sub.z_train)
    again = data.classification_dataset("mnist", path=tmp_path / "m.npz", n_train=20, seed=3)
    np.testing.assert_array_equal(sub.z_train, again.z_train)


def test_classification_dataset_mnist_needs_path():
    with pytest.raises(ValueError, match="needs path"):
        data.classification_dataset("mnist")
    with pytest.raises(ValueError, match="name must be"):
        data.classification_dataset("cifar")
    with pytest.raises(ValueError, match="path is only used"):
        data.classification_dataset("digits", path="x")


# ---------------------------------------------------------------------------
# scikit-learn digits (offline)
# ---------------------------------------------------------------------------


def test_digits_offline():
    ds = data.classification_dataset("digits", seed=0)
    assert ds.n_train + ds.n_test == 1797 and ds.input_dim == 64
    assert ds.n_test == 360
    assert ds.z_train.dtype == np.float64 and ds.y_train.dtype == np.int64
    assert ds.z_train.min() == 0.0 and ds.z_train.max() == 1.0
    assert set(np.unique(ds.y_train)) == set(range(10))
    # stratified: class proportions in train and test agree within one sample per class
    train_frac = np.bincount(ds.y_train) / ds.n_train
    test_frac = np.bincount(ds.y_test) / ds.n_test
    assert np.max(np.abs(train_frac - test_frac)) < 1.5 / 36
    # same images as scikit-learn's, scaled by 1/16
    from sklearn.datasets import load_digits

    x = load_digits().data / 16.0
    all_rows = {row.tobytes() for row in x}
    assert all(row.tobytes() in all_rows for row in ds.z_test)


def test_digits_determinism_and_subset():
    a = data.classification_dataset("digits", seed=4)
    b = data.classification_dataset("digits", seed=4)
    c = data.classification_dataset("digits", seed=5)
    np.testing.assert_array_equal(a.z_train, b.z_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_test, c.y_test)
    sub = data.classification_dataset("digits", seed=4, n_train=200)
    assert sub.n_train == 200 and np.all(np.bincount(sub.y_train) >= 19)
    np.testing.assert_array_equal(sub.z_test, a.z_test)


def test_one_hot():
    labels = np.array([2, 0, 1, 2])
    np.testing.assert_array_equal(data.one_hot(labels), np.eye(3)[labels])
    assert data.one_hot(labels, 10).shape == (4, 10)
    with pytest.raises(ValueError, match="0..1"):
        data.one_hot(labels, 2)
    with pytest.raises(ValueError, match="integer"):
        data.one_hot(np.array([0.5, 1.0]))


# ---------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------


def test_make_dataset(tmp_path):
    ds = data.make_dataset({"name": "teacher_student", "d": 1, "n": 200, "seed": 3})
    np.testing.assert_array_equal(ds.z_train, data.teacher_student(1, n=200, seed=3).z_train)
    task = data.make_dataset({"name": "linear_teacher_task", "task_index": 2, "n_train": 10, "n_eval": 5})
    assert task.z_train.shape == (10, 8)
    assert data.make_dataset({"name": "digits", "n_train": 100}).n_train == 100
    np.savez(tmp_path / "m.npz", **tiny_mnist())
    assert data.make_dataset({"name": "mnist", "path": str(tmp_path / "m.npz")}).n_train == 40
    with pytest.raises(ValueError, match="'name'"):
        data.make_dataset({"name": "cifar"})
    with pytest.raises(ValueError, match="'width'"):
        data.make_dataset({"name": "teacher_student", "d": 1, "width": 3})
    with pytest.raises(ValueError, match="'d'"):
        data.make_dataset({"name": "teacher_student"})
    with pytest.raises(TypeError, match="dict"):
        data.make_dataset("digits")


def test_teacher_output_std_and_the_authors_teachers():
    base = data.teacher_student(1, n=200, seed=3)
    scaled = data.teacher_student(1, n=200, output_std=0.6, weight_std=1.0, seed=3)
    np.testing.assert_array_equal(scaled.info["teacher_a"], 0.6 * base.info["teacher_a"])
    np.testing.assert_allclose(scaled.info["teacher_w"], base.info["teacher_w"] / 0.6, rtol=1e-15)
    np.testing.assert_allclose(
        scaled.y_train,
        data.ACTIVATIONS["sigmoid"](scaled.z_train @ scaled.info["teacher_w"].T) @ scaled.info["teacher_a"],
        rtol=1e-13,
    )
    std3 = 128**-0.25
    three = data.make_dataset(
        {
            "name": "teacher_student",
            "d": 2,
            "teacher_width": 128,
            "weight_std": std3,
            "output_std": std3,
            "seed": 1,
        }
    )
    assert three.info["teacher_w"].shape == (128, 2) and three.n_train == 3500
    with pytest.raises(ValueError, match="output_std must be a number > 0, got 0"):
        data.teacher_student(1, n=20, output_std=0)


def test_classification_normalize():
    plain = data.classification_dataset("digits", seed=0)
    norm = data.make_dataset({"name": "digits", "seed": 0, "normalize": [0.1307, 0.3081]})
    np.testing.assert_allclose(norm.z_train, (plain.z_train - 0.1307) / 0.3081, rtol=1e-15)
    np.testing.assert_array_equal(norm.y_test, plain.y_test)
    assert norm.info["normalize"] == (0.1307, 0.3081)
    with pytest.raises(ValueError, match=r"normalize must be \[mean, std\] with std > 0, got \[0, 0\]"):
        data.classification_dataset("digits", normalize=[0, 0])
