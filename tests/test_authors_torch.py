"""particledyn's trajectory equals the paper authors' PyTorch training loop, step for step.

The reference (tests/authors_reference.py) is the authors' model, loss and torch.optim loop
(GitHub YYY-Experiments/Topological-Invariance-and-Breakdown-in-Learning), fed the same start,
data and batch order (particledyn's epoch permutation). Over two epochs the positions agree to
1e-12 relative in float64 and 1e-5 in float32, for SGD, momentum, Adam and weight decay, with
2-D and 3-D neurons on the authors' teachers and for the cross-entropy MLP on digits.

torch is a test dependency (setup.cfg extra ``test``): without it these tests skip, unless
PARTICLEDYN_REQUIRE_TORCH=1 (CI), where they fail.
"""

import os

import numpy as np
import pytest

try:
    import torch
except ImportError:  # pragma: no cover - depends on the environment
    torch = None
    if os.environ.get("PARTICLEDYN_REQUIRE_TORCH") == "1":
        raise
    pytest.skip(
        "torch is not installed (pip install -e .[test]); PARTICLEDYN_REQUIRE_TORCH=1 makes this an error",
        allow_module_level=True,
    )

from authors_reference import authors_train  # noqa: E402

from particledyn import Simulation  # noqa: E402
from particledyn.clouds import make_cloud  # noqa: E402
from particledyn.data import make_dataset  # noqa: E402
from particledyn.kernels import TwoLayerNet  # noqa: E402
from particledyn.optimizers import make_optimizer  # noqa: E402

STD_3D = 128**-0.25
TEACHERS = {  # the authors' teachers (low-dim/dataloaders/teacher.py, teacher_3d.py)
    2: {"name": "teacher_student", "d": 1, "teacher_width": 128, "weight_std": 1.0, "output_std": 0.6},
    3: {"name": "teacher_student", "d": 2, "teacher_width": 128, "weight_std": STD_3D, "output_std": STD_3D},
}
STARTS = {  # the authors' starts, then w -> 0.1 w - 2 (low-dim/models/initializations.py, mlp.py)
    "figure_eight": {"shape": "figure_eight", "axis_scale": [0.1, 1.0], "center": [-2.0, 0.0]},
    "two_circles": {"shape": "two_circles", "axis_scale": [0.1, 1.0], "center": [-2.0, 0.0]},
    "solid_double_torus": {
        "shape": "solid_double_torus",
        "rotation": [0.6, 0.3, 1.1],
        "axis_scale": [0.1, 1.0, 1.0],
        "center": [-2.0, 0.0, 0.0],
    },
}
OURS = {"SGD": "sgd", "momentum": "momentum", "adam": "adam"}


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def compare(
    dataset,
    start,
    loss,
    optimizer,
    lr,
    weight_decay,
    dtype,
    epochs=2,
    batch_size=128,
    seed=0,
    their_lr=None,
    their_shift=0,
):
    """Worst relative difference ||x_ours - x_torch|| / ||x_torch|| at the end of every epoch.

    ``their_lr`` and ``their_shift`` (batches of step t + shift) give the reference a wrong
    rate or batch order, to show the comparison sees them."""
    kernel = TwoLayerNet(
        dataset.z_train,
        dataset.y_train,
        loss=loss,
        scaling="standard",
        n_outputs=10 if loss == "cross_entropy" else None,
    )
    kernel.sample_by_epoch(batch_size, seed)
    options = {"weight_decay": weight_decay, **({"beta": 0.9} if optimizer == "momentum" else {})}
    sim = Simulation(
        kernel,
        start,
        make_optimizer(OURS[optimizer], **options),
        lr=lr,
        seed=seed,
        batch_size=batch_size,
        frame_every=0,
        dtype=dtype,
    )
    per_epoch = kernel.batches.steps_per_epoch
    reference = authors_train(
        start.astype(dtype),
        dataset.z_train,
        dataset.y_train,
        loss,
        optimizer,
        lr if their_lr is None else their_lr,
        weight_decay,
        lambda t: kernel.batches.indices(t + their_shift),
        epochs * per_epoch,
        dtype=getattr(torch, dtype),
    )
    worst = 0.0
    for step, theirs in enumerate(reference, start=1):
        sim.step()
        if step % per_epoch == 0:
            ours = sim.positions.astype(np.float64)
            worst = max(worst, np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))
    assert sim.state.step == epochs * per_epoch
    return worst


TOLERANCE = {"float64": 1e-12, "float32": 1e-5}

# (neuron dim, start, optimizer, lr, weight decay): the authors' README rates (low-dim/README.md)
TEACHER_CASES = [
    (2, "figure_eight", "SGD", 0.0025, 0.0),
    (2, "figure_eight", "momentum", 0.0005, 0.0),
    (2, "two_circles", "adam", 1e-2, 0.0),
    (2, "figure_eight", "SGD", 0.0025, 1e-3),
    (2, "two_circles", "adam", 1e-4, 1e-2),
    (3, "solid_double_torus", "SGD", 0.0009, 0.0),
    (3, "solid_double_torus", "momentum", 0.001, 0.0),
    (3, "solid_double_torus", "adam", 0.03, 0.0),
    (3, "solid_double_torus", "momentum", 0.001, 1e-3),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("dim,shape,optimizer,lr,weight_decay", TEACHER_CASES)
def test_teacher_trajectory_equals_the_authors_loop(dim, shape, optimizer, lr, weight_decay, dtype):
    dataset = make_dataset({**TEACHERS[dim], "seed": 1})
    n = 1024 if dim == 2 else 4096  # the authors' widths
    start = make_cloud({**STARTS[shape], "n": n, "seed": 2})
    worst = compare(dataset, start, "mse", optimizer, lr, weight_decay, dtype)
    assert worst <= TOLERANCE[dtype], worst


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "optimizer,lr,weight_decay", [("SGD", 0.5, 0.0), ("adam", 1e-3, 0.0), ("momentum", 0.01, 1e-3)]
)
def test_digits_cross_entropy_equals_the_authors_loop(optimizer, lr, weight_decay, dtype):
    # the authors' MNIST start: uniform on S^2 in a random 3-D subspace (high-dim/models/initializations.py)
    dataset = make_dataset({"name": "digits", "seed": 0, "normalize": [0.1307, 0.3081]})
    start = make_cloud(
        {"shape": "sphere", "k": 2, "n": 256, "dim": 64 + 10, "embed": "random_orthonormal", "seed": 3}
    )
    worst = compare(dataset, start, "cross_entropy", optimizer, lr, weight_decay, dtype)
    assert worst <= TOLERANCE[dtype], worst


def test_the_comparison_sees_a_wrong_loop():
    """A loss with a 1/2 that the authors' F.mse_loss does not have (their rate doubled), or the
    batches one step off, is caught."""
    dataset = make_dataset({**TEACHERS[2], "seed": 1})
    start = make_cloud({**STARTS["figure_eight"], "n": 64, "seed": 2})
    assert compare(dataset, start, "mse", "SGD", 0.0025, 0.0, "float64", epochs=1) <= 1e-12
    assert compare(dataset, start, "mse", "SGD", 0.0025, 0.0, "float64", epochs=1, their_lr=0.005) > 1e-4
    assert compare(dataset, start, "mse", "SGD", 0.0025, 0.0, "float64", epochs=1, their_shift=1) > 1e-6


@pytest.mark.parametrize("batch_size", [100, 1024])
def test_power_iteration_sharpness_equals_the_authors_hessian_eigenthings_recipe(batch_size):
    """K by ``method = "power_iter"`` on the test set equals a torch double-backward power
    iteration on the same batches from the same start (the authors' high-dim/sharpness.py);
    batch 100 splits the 360 test rows into 4 batches (the last short), 1024 keeps one."""
    from authors_reference import authors_sharpness, torch_order

    from particledyn.geometry import kernel_sharpness

    dataset = make_dataset({"name": "digits", "seed": 0, "normalize": [0.1307, 0.3081]})
    start = make_cloud(
        {"shape": "sphere", "k": 2, "n": 64, "dim": 64 + 10, "embed": "random_orthonormal", "seed": 3}
    )
    kernel = TwoLayerNet(
        dataset.z_train,
        dataset.y_train,
        loss="cross_entropy",
        scaling="standard",
        n_outputs=10,
        test_inputs=dataset.z_test,
        test_targets=dataset.y_test,
    )
    observer = kernel_sharpness(2, method="power_iter", on="test", batch_size=batch_size)
    sim = Simulation(
        kernel, start, make_optimizer("sgd"), lr=0.5, seed=7, batch_size=batch_size, observers=[observer]
    )
    sim.run(2, progress=False)
    record = sim.sink.observables["sharpness"]
    assert record["step"] == [0, 2]
    for step, positions, ours, count in zip(
        record["step"], (start, sim.positions), record["lambda_max"], record["n_hvp"]
    ):
        n = positions.size
        vector = torch_order(np.random.default_rng([7, step]).random(n), len(positions), 64)
        theirs = authors_sharpness(
            positions.astype(np.float64), dataset.z_test, dataset.y_test, batch_size, vector
        )
        assert abs(ours - theirs) <= 1e-10 * abs(theirs), (step, ours, theirs)
        assert 2 <= count <= 20
        if batch_size < len(dataset.z_test):  # the comparison sees the batches in another order
            shuffled = np.random.default_rng(0).permutation(len(dataset.z_test))
            other = authors_sharpness(
                positions.astype(np.float64),
                dataset.z_test[shuffled],
                dataset.y_test[shuffled],
                batch_size,
                vector,
            )
            assert abs(ours - other) > 1e-6 * abs(other), (step, ours, other)
