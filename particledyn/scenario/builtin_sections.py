"""The built-in data kinds, cloud shapes, optimizers and schedules of scenario files, registered
as a plugin (entry point ``sections``; see :mod:`particledyn.scenario.sections`)."""

from __future__ import annotations

import copy

from ..activations import NAMES as ACTIVATION_NAMES
from ..clouds import SHAPES, native_dimension
from .checks import (
    OPTIONAL,
    REQUIRED,
    Choice,
    Custom,
    Float,
    FloatList,
    Int,
    Invalid,
    Key,
    Literal,
    OneOf,
    ScenarioError,
    Str,
)
from .sections import (
    CLOUD_SHAPES,
    DATA_KINDS,
    OPTIMIZERS,
    SCHEDULES,
    CloudShape,
    DataKind,
    OptimizerType,
    ScheduleType,
)

COUNT = 2**31 - 1
POSITIVE = Float(0.0, lo_open=True)
FRACTION = Float(0, 1, True, True)


# ---------------------------------------------------------------- [data]
def _build_dataset(section: dict):
    from ..data import dataset_spec, make_dataset

    return make_dataset(dataset_spec(section))


_CLASS_N_TRAIN = Key(
    "data.n_train",
    Int(10, COUNT),
    "Keep a seeded stratified subset of this many training samples (optional: all).",
    OPTIONAL,
)
_NORMALIZE = Key(
    "data.normalize",
    FloatList(Float(), scalar_ok=False),
    "[mean, std]: features x -> "
    "(x - mean) / std after scaling to [0, 1] (the paper's code: [0.1307, 0.3081] on MNIST; "
    "optional: none).",
    OPTIONAL,
)

for _kind in (
    DataKind(
        "teacher_student",
        "regression on a random two-layer teacher",
        (
            Key("data.d", Int(1, 100_000), "Input dimension d (1: 2-D neurons, 2: 3-D neurons).", REQUIRED),
            Key("data.n", Int(2, COUNT), "Number of samples, train and test together.", 5000),
            Key("data.teacher_width", Int(1, 1_000_000), "Hidden size of the random teacher.", 10),
            Key("data.train_fraction", FRACTION, "Fraction of the samples used for training.", 0.7),
            Key("data.activation", Choice(ACTIVATION_NAMES), "Teacher activation.", "sigmoid"),
            Key("data.input_std", POSITIVE, "Standard deviation of the inputs.", 2.0),
            Key("data.weight_std", POSITIVE, "Standard deviation of the teacher's first-layer weights.", 0.6),
            Key(
                "data.output_std",
                POSITIVE,
                "Standard deviation of the teacher's output weights (the paper's "
                "code: 0.6 with weight_std = 1 in 2-D, 128^(-1/4) for both in 3-D).",
                1.0,
            ),
        ),
        _build_dataset,
        size=lambda s: (s["d"], 1, "data.n", s["n"] * (s["d"] + 1 + s["teacher_width"]) * 8),
    ),
    DataKind(
        "linear_teacher_task",
        "one task of the continual-learning sequence of linear teachers",
        (
            Key(
                "data.task_index", Int(0, COUNT), "Task number of the continual-learning sequence.", REQUIRED
            ),
            Key("data.d_in", Int(1, 100_000), "Input dimension.", 8),
            Key("data.d_out", Int(1, 100_000), "Output dimension.", 8),
            Key("data.n_train", Int(1, COUNT), "Training samples.", 50000),
            Key("data.n_eval", Int(1, COUNT), "Evaluation (test) samples.", 10000),
        ),
        _build_dataset,
        size=lambda s: (
            s["d_in"],
            s["d_out"],
            "data.n_train",
            (s["n_train"] + s["n_eval"]) * (s["d_in"] + 2 * s["d_out"]) * 8,
        ),
    ),
    DataKind(
        "digits",
        "scikit-learn's 8x8 digits (classification)",
        (
            _CLASS_N_TRAIN,
            Key("data.train_fraction", FRACTION, "Fraction used for training.", 0.8),
            _NORMALIZE,
        ),
        _build_dataset,
        labels=True,
        size=lambda s: (64, 10, "data.kind", 0),
    ),  # bounded by its files
    DataKind(
        "mnist",
        "MNIST from local IDX or .npz files (classification)",
        (
            _CLASS_N_TRAIN,
            _NORMALIZE,
            Key(
                "data.path",
                Str(),
                "Directory of MNIST IDX files or an .npz file (MNIST is not downloaded).",
                REQUIRED,
            ),
        ),
        _build_dataset,
        labels=True,
        size=lambda s: (784, 10, "data.kind", 0),
    ),
):
    DATA_KINDS.register(_kind)


# ---------------------------------------------------------------- [init]
def _rotation(value):
    if (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        return [float(v) for v in value]
    if isinstance(value, list):
        k = len(value)
        if k and all(
            isinstance(row, list)
            and len(row) == k
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row)
            for row in value
        ):
            return [[float(v) for v in row] for row in value]
        raise Invalid("expected a square array of arrays of numbers (a rotation matrix) or 3 Euler angles")
    return OneOf((Literal("random"), Float())).parse(value, "rotation")


def _matrix(value):
    if (
        isinstance(value, list)
        and value
        and all(
            isinstance(row, list)
            and len(row) == len(value)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row)
            for row in value
        )
    ):
        return [[float(v) for v in row] for row in value]
    raise Invalid("expected a square array of arrays of numbers")


def _parts(value):
    if not isinstance(value, list) or not value or not all(isinstance(p, dict) for p in value):
        raise Invalid("expected a non-empty array of cloud tables (each with shape, n, ...)")
    return copy.deepcopy(value)


#: The [init] keys of the shapes, by make_cloud key; a shape takes those its clouds.SHAPES entry lists.
_INIT_KEYS = {
    "n": Key("init.n", Int(1, COUNT), "Number of particles N.", REQUIRED),
    "genus": Key("init.genus", Int(0, 1000), "Number of holes (region) or genus (surface).", 2),
    "count": Key("init.count", Int(1, 10_000), "Number of disjoint copies.", 2),
    "gap": Key("init.gap", POSITIVE, "Gap between copies over a copy's half-length.", 1.0),
    "minor_ratio": Key("init.minor_ratio", FRACTION, "Tube radius over major radius.", 0.4),
    "k": Key("init.k", Int(0, 1000), "The sphere S^k (native dimension k + 1).", 2),
    "radius": Key("init.radius", POSITIVE, "Radius of each circle.", 1.0),
    "separation": Key(
        "init.separation", POSITIVE, "Distance between the circles' centres (> 2 radius).", 2.4
    ),
    "major": Key("init.major", POSITIVE, "Major radius of each torus.", 0.5),
    "minor": Key("init.minor", POSITIVE, "Tube radius of each torus (< major).", 0.2),
    "offset": Key("init.offset", POSITIVE, "The tori are centred at (+-offset, 0, 0).", 0.8),
    "sharpness": Key("init.sharpness", POSITIVE, "k of the soft minimum joining the tori.", 5.0),
    "size": Key("init.size", POSITIVE, "Scale: bounding radius (gaussian: standard deviation).", 1.0),
    "center": Key(
        "init.center",
        FloatList(Float(), scalar_ok=False),
        "Translation, D numbers (optional: origin).",
        OPTIONAL,
    ),
    "rotation": Key(
        "init.rotation",
        Custom('an angle, 3 Euler angles, "random" or a square matrix', _rotation),
        "Rotation in the native space: an angle in radians (planar shapes), 3 angles about the "
        'fixed x, y, z axes (3-D shapes: R = Rz Ry Rx), "random", or a matrix (optional: none).',
        OPTIONAL,
    ),
    "axis_scale": Key(
        "init.axis_scale",
        FloatList(Float(), scalar_ok=False),
        "Per-axis factors, D numbers, "
        "applied after embedding and before init.center (optional: none); e.g. axis_scale = "
        "[0.1, 1] with center = [-2, 0] is the map w -> 0.1 w - 2 of the paper's code.",
        OPTIONAL,
    ),
    "linear_map": Key(
        "init.linear_map",
        Custom("a D x D matrix", _matrix),
        "A D x D matrix applied after "
        "embedding and before init.center, instead of axis_scale (optional: none).",
        OPTIONAL,
    ),
    "embed": Key(
        "init.embed", Choice(("first", "random_orthonormal")), "How the native shape enters R^D.", "first"
    ),
    "parts": Key(
        "init.parts",
        Custom("an array of cloud tables", _parts, "tuple[dict, ...]"),
        "Clouds to stack, each a table "
        "with shape, n, ... (as make_cloud takes them, in their native dimension).",
        REQUIRED,
    ),
}
_OWN_KEYS = {
    "disjoint_regions": {"genus": Key("init.genus", Int(0, 1000), "Holes per copy.", 1)},
    # a union of clouds is embedded as a whole
    "union": {"embed": _INIT_KEYS["embed"]},
}


def _cloud_spec(init: dict) -> dict:
    return {k: v for k, v in init.items() if v is not None and k not in ("embed", "output_scale")}


def _place(init: dict, dim: int, rows=None):
    from ..clouds import make_cloud

    spec = {**_cloud_spec(init), "dim": dim}
    if "embed" in SHAPES[init["shape"]]["keys"]:
        spec["embed"] = init["embed"]
    return make_cloud(spec, rows)


def _union(init: dict, dim: int, rows=None):
    from ..clouds import BLOCK, cloud_size, embed, make_cloud

    def embedded(points):
        if points.shape[1] > dim:
            raise ScenarioError(
                f"init.parts: a cloud of dimension {points.shape[1]} does not fit neurons of dimension D = {dim}"
            )
        return embed(points, dim, init["embed"], seed=init["seed"])

    spec = _cloud_spec(init)
    if cloud_size(spec) <= BLOCK:  # embedded as a whole, as before blocks (rows cut from it)
        points = embedded(make_cloud(spec))
        return points if rows is None else points[rows[0] : rows[1]].copy()
    return make_cloud(spec, rows, post=embedded)  # block by block, each part's own blocks


def _shape_keys(name: str) -> tuple[Key, ...]:
    takes = set(SHAPES[name]["keys"])
    own = _OWN_KEYS.get(name, {})
    return tuple(own.get(k, key) for k, key in _INIT_KEYS.items() if k in takes or k in own)


def _summary(name: str) -> str:
    fn = SHAPES[name]["fn"]
    if fn is None:
        return "a stack of the clouds init.parts"
    return (fn.__doc__ or name).strip().splitlines()[0]


for _name in SHAPES:
    CLOUD_SHAPES.register(
        CloudShape(
            _name,
            _summary(_name),
            _shape_keys(_name),
            _union if _name == "union" else _place,
            lambda init: native_dimension(init),
            rows=True,
        )
    )


# ---------------------------------------------------------------- [optimizer]
def _optimizer_builder(*names: str):
    def build(section: dict):
        from ..optimizers import make_optimizer

        return make_optimizer(
            section["name"], weight_decay=section["weight_decay"], **{k: section[k] for k in names}
        )

    return build


for _optimizer in (
    OptimizerType("gd", "gradient descent, x <- x + eta U", (), _optimizer_builder()),
    OptimizerType(
        "sgd", "gradient descent on the step's mini-batch (optimizer.batch_size)", (), _optimizer_builder()
    ),
    OptimizerType(
        "momentum",
        "heavy-ball momentum",
        (Key("optimizer.beta", Float(0, 1, hi_open=True), "Heavy-ball momentum coefficient.", 0.9),),
        _optimizer_builder("beta"),
        state_copies=1,
    ),
    OptimizerType(
        "adam",
        "Adam, per coordinate",
        (
            Key("optimizer.beta1", Float(0, 1, hi_open=True), "Decay of the first moment.", 0.9),
            Key("optimizer.beta2", Float(0, 1, hi_open=True), "Decay of the second moment.", 0.999),
            Key("optimizer.eps", POSITIVE, "Denominator offset.", 1e-8),
        ),
        _optimizer_builder("beta1", "beta2", "eps"),
        state_copies=2,
    ),
):
    OPTIMIZERS.register(_optimizer)


# ---------------------------------------------------------------- [schedule]
def _steps_default(done) -> int:
    return max(1, done.run.steps)


def _constant(s):
    from ..schedules import Constant

    return Constant(s["lr"])


def _step_decay(s):
    from ..schedules import StepDecay

    return StepDecay(s["lr"], s["every"], s["factor"])


def _cosine(s):
    from ..schedules import Cosine

    return Cosine(s["lr"], s["steps"], s["lr_min"], s["warmup"])


def _derived_steps():
    from .checks import Derived

    return Derived("max(1, run.steps)", _steps_default)


for _schedule in (
    ScheduleType("constant", "eta(t) = lr", (), _constant),
    ScheduleType(
        "step",
        "eta(t) = lr * factor ** (t // every)",
        (
            Key("schedule.every", Int(1, 2**62), "Decay period in steps.", REQUIRED),
            Key("schedule.factor", Float(0, 1, lo_open=True), "Decay factor per period.", 0.1),
        ),
        _step_decay,
    ),
    ScheduleType(
        "cosine",
        "linear warm-up, then cosine decay from lr to lr_min over steps",
        (
            Key("schedule.steps", Int(1, 2**62), "Length of the cosine decay.", _derived_steps()),
            Key("schedule.lr_min", Float(0.0), "Final learning rate (<= lr).", 0.0),
            Key("schedule.warmup", Int(0, 2**62), "Linear warm-up steps (< steps).", 0),
        ),
        _cosine,
    ),
):
    SCHEDULES.register(_schedule)
