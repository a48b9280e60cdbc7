"""Data sets for the built-in kernels: teacher-student regression, continual linear
tasks, and digit classification (scikit-learn digits offline, MNIST from user files).

Every data set is a :class:`Dataset` with float64 inputs ``z_*`` of shape (n, d) and
targets ``y_*``; random ones are deterministic for a seed.
"""

from __future__ import annotations

import gzip
import numbers
import os
import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .activations import ACTIVATIONS, check_activation

__all__ = [
    "Dataset",
    "teacher_student",
    "linear_teacher_task",
    "classification_dataset",
    "load_digits_dataset",
    "load_mnist",
    "read_idx",
    "write_idx",
    "one_hot",
    "make_dataset",
    "ACTIVATIONS",
]


@dataclass(frozen=True)
class Dataset:
    """A train/test data set.

    Attributes
    ----------
    z_train, z_test : ndarray, shape (n_train, d), (n_test, d), float64
        Inputs.
    y_train, y_test : ndarray
        Targets: shape (n,) float64 for a scalar teacher, (n, d_out) float64 for a
        vector teacher, (n,) int64 class labels for classification.
    name : str
        Which generator/loader made it.
    info : dict
        Everything else: teacher parameters (``teacher_a``, ``teacher_w``,
        ``teacher_matrix``, ``activation``), ``n_classes``, the seed, ...
    """

    z_train: np.ndarray
    y_train: np.ndarray
    z_test: np.ndarray
    y_test: np.ndarray
    name: str = ""
    info: dict = field(default_factory=dict)

    @property
    def n_train(self) -> int:
        return int(self.z_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.z_test.shape[0])

    @property
    def input_dim(self) -> int:
        return int(self.z_train.shape[1])


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_seed(seed: Any) -> int:
    return _check_int(seed, "seed", 0)


def _check_fraction(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < float(value) < 1:
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------
# teacher-student regression (paper, Appendix C.1)
# ---------------------------------------------------------------------------


def teacher_student(
    d: int,
    n: int = 5000,
    teacher_width: int = 10,
    train_fraction: float = 0.7,
    activation: str = "sigmoid",
    input_std: float = 2.0,
    weight_std: float = 0.6,
    output_std: float = 1.0,
    seed: int = 0,
) -> Dataset:
    """Regression data from a random two-layer teacher (paper, Appendix C.1).

    Inputs ``z_s ~ N(0, input_std^2 I_d)`` (the paper: variance 4), labels
    ``y_s = sum_j a*_j act(<w*_j, z_s>)`` with ``a*_j ~ N(0, output_std^2)`` and
    ``w*_jk ~ N(0, weight_std^2)`` (the paper: variance 0.36). The paper does not give
    the teacher's hidden size h*; ``teacher_width=10`` is this project's choice. The
    paper's code (GitHub YYY-Experiments/Topological-Invariance-and-Breakdown-in-Learning,
    ``low-dim/dataloaders/teacher*.py``) uses ``teacher_width=128`` and puts the 0.6 on
    the output layer in 2-D (``weight_std=1, output_std=0.6``) and ``128^(-1/4)`` on both
    layers in 3-D (``weight_std = output_std = 0.29730177875068026``). The
    first ``round(train_fraction * n)`` samples are the training set (samples are
    i.i.d., so no shuffle is needed); the paper uses n = 5000 and 70% for training.
    The teacher and the inputs come from independent streams of ``seed``, so the
    teacher does not change with ``n``.

    Parameters
    ----------
    d : int
        Input dimension (the paper: 1 for 2-D neurons, 2 for 3-D neurons).
    n : int
        Total number of samples.
    teacher_width : int
        Hidden size h* of the teacher.
    train_fraction : float
        Fraction of samples for training, in (0, 1).
    activation : {"sigmoid", "tanh", "relu"}
        Teacher activation.
    input_std, weight_std, output_std : float
        Standard deviations of the inputs, of the teacher's first-layer weights and of its
        output weights.
    seed : int
        Seed, >= 0.

    Returns
    -------
    Dataset
        ``y_*`` of shape (n,); ``info`` holds ``teacher_a`` (h*,), ``teacher_w``
        (h*, d), ``activation`` and ``seed``.
    """
    d = _check_int(d, "d", 1)
    n = _check_int(n, "n", 2)
    teacher_width = _check_int(teacher_width, "teacher_width", 1)
    train_fraction = _check_fraction(train_fraction, "train_fraction")
    check_activation(activation)
    for name, value in (("input_std", input_std), ("weight_std", weight_std), ("output_std", output_std)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
            raise ValueError(f"{name} must be a number > 0, got {value!r}")
    seed = _check_seed(seed)
    n_train = int(round(train_fraction * n))
    if not 1 <= n_train <= n - 1:
        raise ValueError(f"train_fraction={train_fraction} leaves an empty train or test set for n={n}")

    teacher_ss, input_ss = np.random.SeedSequence(seed).spawn(2)
    trng = np.random.default_rng(teacher_ss)
    a_star = trng.standard_normal(teacher_width) * output_std
    w_star = trng.standard_normal((teacher_width, d)) * weight_std
    z = np.random.default_rng(input_ss).standard_normal((n, d)) * input_std
    y = ACTIVATIONS[activation](z @ w_star.T) @ a_star
    info = {"teacher_a": a_star, "teacher_w": w_star, "activation": activation, "seed": seed}
    return Dataset(z[:n_train], y[:n_train], z[n_train:], y[n_train:], "teacher_student", info)


# ---------------------------------------------------------------------------
# continual learning: one random linear task per index (paper, Appendix C.3)
# ---------------------------------------------------------------------------


def linear_teacher_task(
    task_index: int, d_in: int = 8, d_out: int = 8, n_train: int = 50000, n_eval: int = 10000, seed: int = 0
) -> Dataset:
    """Task ``task_index`` of the loss-of-plasticity experiment (paper, Appendix C.3).

    Inputs are i.i.d. standard Gaussian in R^d_in; the targets are ``y = z @ M.T``
    for a random linear teacher ``M`` of shape (d_out, d_in). The paper does not give
    M's distribution; here ``M_ij ~ N(0, 1/d_in)``, so every target coordinate has unit
    variance. Task ``t`` draws from ``np.random.default_rng([seed, t])``, so it is
    deterministic per (seed, task_index), independent across tasks, and any task can
    be regenerated without the ones before it. The paper discards task 0 as warm-up.

    Parameters
    ----------
    task_index : int
        Task number, >= 0.
    d_in, d_out : int
        Input and output dimensions (the paper: 8 and 8).
    n_train, n_eval : int
        Samples per task (the paper: 50000 and 10000).
    seed : int
        Seed of the task sequence, >= 0.

    Returns
    -------
    Dataset
        ``z_test``/``y_test`` are the evaluation samples; ``info`` holds
        ``teacher_matrix`` (d_out, d_in), ``task_index`` and ``seed``.
    """
    task_index = _check_int(task_index, "task_index", 0)
    d_in = _check_int(d_in, "d_in", 1)
    d_out = _check_int(d_out, "d_out", 1)
    n_train = _check_int(n_train, "n_train", 1)
    n_eval = _check_int(n_eval, "n_eval", 1)
    seed = _check_seed(seed)
    rng = np.random.default_rng([seed, task_index])
    matrix = rng.standard_normal((d_out, d_in)) / np.sqrt(d_in)
    z = rng.standard_normal((n_train + n_eval, d_in))
    y = z @ matrix.T
    info = {"teacher_matrix": matrix, "task_index": task_index, "seed": seed}
    return Dataset(z[:n_train], y[:n_train], z[n_train:], y[n_train:], "linear_teacher_task", info)


# ---------------------------------------------------------------------------
# IDX files (MNIST's format)
# ---------------------------------------------------------------------------

# IDX type byte -> big-endian numpy dtype
_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), plain or gzip-compressed.

    Format: two zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), a byte with the number of dimensions, one big-endian
    uint32 per dimension, then the data in C order, big-endian. Gzip is recognised by
    its magic bytes, whatever the file name.

    Parameters
    ----------
    path : str or PathLike
        File to read.

    Returns
    -------
    ndarray
        With the file's shape, in native byte order (uint8 for MNIST).

    Raises
    ------
    ValueError
        If the file is not a well-formed IDX file (bad magic, unknown type, data size
        not matching the header); the message names the file and the problem.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{path}: corrupt gzip data ({exc})") from None
    if len(raw) < 4:
        raise ValueError(f"{path}: not an IDX file (only {len(raw)} bytes, the header needs 4)")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"{path}: not an IDX file (magic number must start with two zero bytes, got {raw[:2].hex()})"
        )
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_TYPES:
        raise ValueError(
            f"{path}: unknown IDX type byte 0x{type_code:02x}; expected one of "
            + ", ".join(f"0x{k:02x}" for k in _IDX_TYPES)
        )
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions; expected at least 1")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, {ndim} dimensions need {header})")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_TYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: IDX data has {len(raw) - header} bytes but header shape {shape} of "
            f"{dtype.name} needs {expected}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> None:
    """Write an array as an IDX file, the inverse of :func:`read_idx`.

    Parameters
    ----------
    path : str or PathLike
        Destination.
    array : ndarray
        Of dtype uint8, int8, int16, int32, float32 or float64, at least 1-D, at most
        255 dimensions.
    compress : bool, optional
        Gzip the file; default: when the name ends in ``.gz``.
    """
    arr = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in _IDX_TYPES.items()}
    dt = arr.dtype.newbyteorder("=")
    if dt not in codes:
        raise ValueError(
            f"IDX cannot store dtype {arr.dtype}; expected one of uint8, int8, int16, int32, float32, float64"
        )
    if not 1 <= arr.ndim <= 255:
        raise ValueError(f"IDX needs an array with 1 to 255 dimensions, got {arr.ndim}")
    code = codes[dt]
    payload = (
        bytes([0, 0, code, arr.ndim])
        + struct.pack(f">{arr.ndim}I", *arr.shape)
        + np.ascontiguousarray(arr, dtype=_IDX_TYPES[code]).tobytes()
    )
    path = Path(path)
    if compress is None:
        compress = path.name.endswith(".gz")
    path.write_bytes(gzip.compress(payload) if compress else payload)


# ---------------------------------------------------------------------------
# MNIST and digits
# ---------------------------------------------------------------------------

_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def _find_idx(directory: Path, stem: str) -> Path:
    # the classic names, the variant with a dot before "idx", each optionally gzipped
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{directory}: no MNIST file {stem!r} (also tried {stem}.gz, {dotted}, {dotted}.gz)"
    )


def _check_mnist_arrays(arrays: dict[str, np.ndarray], source: str) -> None:
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim not in (2, 3):
            raise ValueError(f"{source}: x_{split} must have shape (n, 28, 28) or (n, 784), got {x.shape}")
        if y.ndim != 1:
            raise ValueError(f"{source}: y_{split} must be a 1-D array of labels, got shape {y.shape}")
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"{source}: x_{split} has {x.shape[0]} images but y_{split} has {y.shape[0]} labels"
            )
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{source}: y_{split} must hold integer labels, got dtype {y.dtype}")
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise ValueError(
            f"{source}: train images {arrays['x_train'].shape[1:]} and test images "
            f"{arrays['x_test'].shape[1:]} differ in shape"
        )


def load_mnist(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read MNIST (or any data set in its layout) from files the user provides.

    Parameters
    ----------
    path : str or PathLike
        Either a directory holding the four IDX files ``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
        ``t10k-labels-idx1-ubyte`` (each may end in ``.gz``, and ``-idx`` may be
        ``.idx``), or an ``.npz`` file with arrays ``x_train``, ``y_train``,
        ``x_test``, ``y_test`` (the layout of keras' ``mnist.npz``).

    Returns
    -------
    dict
        ``x_train``, ``y_train``, ``x_test``, ``y_test`` as stored (MNIST: uint8
        images of shape (n, 28, 28) and uint8 labels).

    Raises
    ------
    FileNotFoundError
        Path or one of the files missing.
    ValueError
        Malformed file, missing NPZ key, or inconsistent shapes.
    """
    path = Path(path)
    if path.is_dir():
        arrays = {key: read_idx(_find_idx(path, stem)) for key, stem in _MNIST_FILES.items()}
    elif path.is_file():
        try:
            npz = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"{path}: not a readable .npz file ({exc}); expected a directory of IDX files or an .npz"
            ) from None
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError(
                f"{path}: holds a single array, expected an .npz with keys x_train, y_train, x_test, y_test"
            )
        with npz:
            missing = [key for key in _MNIST_FILES if key not in npz.files]
            if missing:
                raise ValueError(
                    f"{path}: missing key(s) {missing}; expected x_train, y_train, x_test, y_test, found {npz.files}"
                )
            try:
                arrays = {key: npz[key] for key in _MNIST_FILES}
            except ValueError as exc:
                raise ValueError(
                    f"{path}: cannot read arrays ({exc}); expected plain numeric arrays"
                ) from None
    else:
        raise FileNotFoundError(f"{path}: no such directory or .npz file")
    _check_mnist_arrays(arrays, str(path))
    return arrays


def one_hot(labels: np.ndarray, n_classes: int | None = None, dtype=np.float64) -> np.ndarray:
    """One-hot encode integer labels.

    Parameters
    ----------
    labels : array_like of int, shape (n,)
        Labels in ``0..n_classes-1``.
    n_classes : int, optional
        Number of classes; default ``labels.max() + 1``.
    dtype : dtype
        Output dtype.

    Returns
    -------
    ndarray, shape (n, n_classes)
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got shape {labels.shape} dtype {labels.dtype}")
    if n_classes is None:
        n_classes = int(labels.max()) + 1 if labels.size else 0
    n_classes = _check_int(n_classes, "n_classes", 1)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, got range {labels.min()}..{labels.max()}")
    out = np.zeros((labels.size, n_classes), dtype=dtype)
    out[np.arange(labels.size), labels] = 1
    return out


def _stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Indices of a seeded, stratified subset of ``size`` samples, in increasing order."""
    from sklearn.model_selection import train_test_split

    if size >= labels.size:
        return np.arange(labels.size)
    idx, _ = train_test_split(np.arange(labels.size), train_size=size, random_state=seed, stratify=labels)
    return np.sort(idx)


def load_digits_dataset(seed: int = 0, train_fraction: float = 0.8, n_train: int | None = None) -> Dataset:
    """scikit-learn's handwritten digits (offline): 1797 8x8 images, 64 features, 10 classes.

    Features are pixel intensities scaled from 0..16 to [0, 1]. The train/test split
    is stratified and seeded (``sklearn.model_selection.train_test_split``).

    Parameters
    ----------
    seed : int
        Seed of the split, >= 0.
    train_fraction : float
        Fraction of the 1797 images for training, in (0, 1).
    n_train : int, optional
        Keep only a seeded stratified subset of this many training images.

    Returns
    -------
    Dataset
        ``info`` holds ``n_classes`` (10), ``image_shape`` ((8, 8)) and ``seed``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    seed = _check_seed(seed)
    train_fraction = _check_fraction(train_fraction, "train_fraction")
    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float64) / 16.0
    y = y.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, train_size=train_fraction, random_state=seed, stratify=y)
    if n_train is not None:
        keep = _stratified_subset(y_tr, _check_int(n_train, "n_train", 10), seed)
        x_tr, y_tr = x_tr[keep], y_tr[keep]
    info = {"n_classes": 10, "image_shape": (8, 8), "seed": seed}
    return Dataset(x_tr, y_tr, x_te, y_te, "digits", info)


def _check_normalize(value: Any) -> tuple[float, float]:
    ok = (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) and np.isfinite(float(v)) for v in value
        )
    )
    if not ok or not value[1] > 0:
        raise ValueError(f"normalize must be [mean, std] with std > 0, got {value!r}")
    return float(value[0]), float(value[1])


def classification_dataset(
    name: str = "digits",
    path: str | os.PathLike | None = None,
    seed: int = 0,
    n_train: int | None = None,
    train_fraction: float = 0.8,
    normalize=None,
) -> Dataset:
    """A classification data set with float features in [0, 1] and int64 labels.

    Parameters
    ----------
    name : {"digits", "mnist"}
        ``"digits"``: scikit-learn's 8x8 digits, offline (see
        :func:`load_digits_dataset`). ``"mnist"``: read from ``path`` with
        :func:`load_mnist`; images are flattened (784 features), divided by 255, and
        the files' own train/test split is kept.
    path : str or PathLike, optional
        Required for ``"mnist"``: a directory of IDX files or an ``.npz`` file.
    seed : int
        Seed of the split (digits) and of the ``n_train`` subset.
    n_train : int, optional
        Keep only a seeded stratified subset of this many training samples.
    train_fraction : float
        Digits only: fraction used for training.
    normalize : (mean, std), optional
        Then map every feature ``x -> (x - mean) / std``; the paper's code uses
        torchvision's ``Normalize((0.1307,), (0.3081,))`` on MNIST in [0, 1].

    Returns
    -------
    Dataset
        ``info["n_classes"]`` is 10; use :func:`one_hot` for one-hot targets.
    """
    if normalize is not None:
        mean, std = _check_normalize(normalize)
        ds = classification_dataset(name, path, seed, n_train, train_fraction)
        return Dataset(
            (ds.z_train - mean) / std,
            ds.y_train,
            (ds.z_test - mean) / std,
            ds.y_test,
            ds.name,
            {**ds.info, "normalize": (mean, std)},
        )
    if name == "digits":
        if path is not None:
            raise ValueError("path is only used for name='mnist'; digits ship with scikit-learn")
        return load_digits_dataset(seed=seed, train_fraction=train_fraction, n_train=n_train)
    if name != "mnist":
        raise ValueError(f"name must be 'digits' or 'mnist', got {name!r}")
    if path is None:
        raise ValueError(
            "name='mnist' needs path: a directory with the MNIST IDX files or an .npz file "
            "(MNIST cannot be downloaded here)"
        )
    seed = _check_seed(seed)
    arrays = load_mnist(path)
    image_shape = arrays["x_train"].shape[1:]
    scale = 255.0 if arrays["x_train"].dtype == np.uint8 else 1.0
    x_tr = arrays["x_train"].reshape(len(arrays["x_train"]), -1).astype(np.float64) / scale
    x_te = arrays["x_test"].reshape(len(arrays["x_test"]), -1).astype(np.float64) / scale
    y_tr = arrays["y_train"].astype(np.int64)
    y_te = arrays["y_test"].astype(np.int64)
    if n_train is not None:
        keep = _stratified_subset(y_tr, _check_int(n_train, "n_train", 10), seed)
        x_tr, y_tr = x_tr[keep], y_tr[keep]
    n_classes = int(max(y_tr.max(), y_te.max())) + 1
    info = {
        "n_classes": max(n_classes, 10),
        "image_shape": tuple(image_shape),
        "seed": seed,
        "path": str(path),
    }
    return Dataset(x_tr, y_tr, x_te, y_te, "mnist", info)


# ---------------------------------------------------------------------------
# registry for TOML scenarios
# ---------------------------------------------------------------------------

#: name -> (generator, the keys it takes)
_DATASETS: dict[str, tuple[Callable[..., Dataset], tuple[str, ...]]] = {
    "teacher_student": (
        teacher_student,
        (
            "d",
            "n",
            "teacher_width",
            "train_fraction",
            "activation",
            "input_std",
            "weight_std",
            "output_std",
            "seed",
        ),
    ),
    "linear_teacher_task": (
        linear_teacher_task,
        ("task_index", "d_in", "d_out", "n_train", "n_eval", "seed"),
    ),
    "digits": (
        lambda **kw: classification_dataset("digits", **kw),
        ("seed", "n_train", "train_fraction", "normalize"),
    ),
    "mnist": (lambda **kw: classification_dataset("mnist", **kw), ("path", "seed", "n_train", "normalize")),
}


def dataset_spec(section: Mapping[str, Any]) -> dict:
    """The :func:`make_dataset` spec of a resolved ``[data]`` section (``kind`` -> ``name``, no unset keys)."""
    return {"name": section["kind"], **{k: v for k, v in section.items() if k != "kind" and v is not None}}


def training_rows(spec: Mapping[str, Any]) -> int:
    """The number of training rows :func:`make_dataset` builds from ``spec``.

    MNIST counts the labels of its training split only (the images are not read); every
    other data set is small and built, so the count is the one a run trains on.

    Parameters
    ----------
    spec : dict
        As :func:`make_dataset` takes it.

    Raises
    ------
    ValueError, OSError
        As :func:`make_dataset` raises them (a bad value, a missing MNIST file).
    """
    if spec.get("name") != "mnist" or "path" not in spec:
        return make_dataset(spec).n_train
    path = Path(spec["path"])
    if path.is_dir():
        labels = read_idx(_find_idx(path, _MNIST_FILES["y_train"]))
    elif path.is_file():
        try:
            with np.load(path, allow_pickle=False) as npz:
                labels = npz["y_train"]
        except (KeyError, ValueError, AttributeError) as exc:
            raise ValueError(
                f"{path}: no readable y_train array ({exc}); expected an .npz with keys "
                "x_train, y_train, x_test, y_test"
            ) from None
    else:
        raise FileNotFoundError(f"{path}: no such directory or .npz file")
    n_train = spec.get("n_train")
    return len(labels) if n_train is None else min(len(labels), _check_int(n_train, "n_train", 10))


def make_dataset(spec: Mapping[str, Any]) -> Dataset:
    """Build a data set from a dict, as a TOML scenario names it.

    ``spec["name"]`` picks the generator; every other key is passed on as a keyword:

    - ``teacher_student``: d (required), n, teacher_width, train_fraction, activation,
      input_std, weight_std, output_std, seed — see :func:`teacher_student`;
    - ``linear_teacher_task``: task_index (required), d_in, d_out, n_train, n_eval, seed
      — see :func:`linear_teacher_task`;
    - ``digits``: seed, n_train, train_fraction, normalize — see :func:`load_digits_dataset`
      and :func:`classification_dataset`;
    - ``mnist``: path (required), seed, n_train, normalize — see :func:`classification_dataset`.

    Raises
    ------
    ValueError
        Unknown name or key, or a bad value (the message names it).
    """
    if not isinstance(spec, Mapping):
        raise TypeError(f"data spec must be a dict (a TOML table), got {type(spec).__name__}")
    name = spec.get("name")
    if name not in _DATASETS:
        raise ValueError(f"data spec key 'name' must be one of {sorted(_DATASETS)}, got {name!r}")
    fn, allowed = _DATASETS[name]
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    for key in kwargs:
        if key not in allowed:
            raise ValueError(
                f"data spec key {key!r} is not valid for {name!r}; valid keys: {', '.join(allowed)}"
            )
    required = {"teacher_student": "d", "linear_teacher_task": "task_index", "mnist": "path"}.get(name)
    if required is not None and required not in kwargs:
        raise ValueError(f"data spec for {name!r} needs key {required!r}")
    return fn(**kwargs)
