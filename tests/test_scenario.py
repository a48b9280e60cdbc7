"""Scenario schema: defaults, documented keys, one-line errors naming the key path."""

import copy
import inspect
from unittest import mock

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scenario_fuzz import TINY, TOML_VALUES, mutate, toml_dumps

from particledyn import clouds, data
from particledyn.runner import prepare
from particledyn.scenario import (
    OBSERVER_TYPES,
    ResolvedScenario,
    ScenarioError,
    default_scenario,
    describe_keys,
    load_scenario,
    parse_scenario,
    schema,
    validate_scenario,
)
from particledyn.scenario.checks import OPTIONAL, REQUIRED, Choice, Derived, Float, Int, Invalid
from particledyn.scenario.memory import check_memory, estimate_bytes

BASE = {
    "run": {"name": "t", "steps": 10, "seed": 1, "threads": 1},
    "data": {"kind": "teacher_student", "d": 1, "n": 50},
    "kernel": {"scaling": "mean_field"},
    "init": {"shape": "genus_region", "n": 20},
    "optimizer": {"name": "adam", "beta1": 0.8},
    "schedule": {"lr": 0.1},
    "output": {"frame_every": 2},
    "observers": [{"type": "loss"}, {"type": "merges", "every": 2, "eps": 0.05}],
}


def error_of(raw) -> str:
    with pytest.raises(ScenarioError) as info:
        validate_scenario(raw)
    message = str(info.value)
    assert "\n" not in message
    return message


def with_value(path, value):
    raw = copy.deepcopy(BASE)
    section, name = path.split(".")
    raw[section][name] = value
    return raw


def test_default_scenario_resolves_every_applicable_key():
    resolved = default_scenario().resolved
    assert resolved.run.steps == 500 and resolved.data.kind == "teacher_student"
    assert resolved.data.seed == resolved.run.seed  # derived default
    assert resolved.output.path == "default.h5" and resolved.output.dtype == "float64"
    assert resolved.kernel.loss == "mse"
    assert [o.type for o in resolved.observers] == [
        "loss",
        "pairwise_lipschitz",
        "sharpness",
        "merges",
        "betti",
    ]
    assert resolved.observers[1].k == 6 and resolved.observers[4].scale == (0.1,)
    # a resolved scenario validates to itself (what a resumed run relies on)
    assert ResolvedScenario.from_dict(resolved.to_dict()) == resolved


def test_overrides_and_derived_defaults():
    resolved = validate_scenario(BASE, {"run.steps": 77})
    assert resolved.run.steps == 77
    assert resolved.optimizer.to_dict() == {
        "name": "adam",
        "weight_decay": 0.0,
        "batch_size": None,
        "sampling": "step",
        "beta1": 0.8,
        "beta2": 0.999,
        "eps": 1e-8,
    }
    cosine = validate_scenario(with_value("schedule.kind", "cosine"), {"run.steps": 0})
    assert cosine.schedule.steps == 1
    shorthand = copy.deepcopy(BASE)
    shorthand["schedule"] = 0.25
    assert validate_scenario(shorthand).schedule.to_dict() == {"kind": "constant", "lr": 0.25}
    assert validate_scenario({**BASE, "data": {"kind": "digits"}}).kernel.loss == "cross_entropy"
    sharp = {**BASE, "observers": [{"type": "sharpness"}]}
    assert validate_scenario(sharp).observers[0].preconditioned is True


@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("optimizer.beta1", 1.5, "optimizer.beta1 = 1.5: expected 0 <= beta1 < 1"),
        ("optimizer.beta1", "x", 'optimizer.beta1 = "x": expected a number 0 <= beta1 < 1, got a string'),
        ("run.steps", -1, "run.steps = -1: expected an integer steps >= 0"),
        ("run.steps", 2.5, "run.steps = 2.5: expected an integer steps >= 0, got a float"),
        ("run.steps", True, "run.steps = true: expected an integer steps >= 0, got a boolean"),
        ("schedule.lr", 0, "schedule.lr = 0: expected lr > 0"),
        ("schedule.lr", float("nan"), "schedule.lr = nan: expected a number lr > 0"),
        ("run.dtype", "float16", 'run.dtype = "float16": expected one of "float32", "float64"'),
        ("init.n", [1], "init.n = [1]: expected an integer n >= 1, got an array"),
        ("run.name", "a/b", 'run.name = "a/b": expected a name of letters, digits and _ . + -'),
    ],
)
def test_bad_values_name_the_key(path, value, expected):
    assert error_of(with_value(path, value)) == expected


def test_unknown_missing_and_misplaced_keys():
    assert error_of(with_value("optimizer.bta1", 0.5)).startswith(
        'optimizer.bta1: unknown key (did you mean beta1?); valid keys for optimizer.name = "adam":'
    )
    assert error_of(with_value("optimizer.beta", 0.5)) == (
        'optimizer.beta = 0.5: not used when optimizer.name = "adam" (only for momentum)'
    )
    raw = copy.deepcopy(BASE)
    del raw["run"]["steps"]
    assert error_of(raw) == "run.steps: missing required key (an integer steps >= 0)"
    raw = copy.deepcopy(BASE)
    del raw["data"]["d"]
    assert error_of(raw) == (
        'data.d: missing required key (an integer 1 <= d <= 100000) for data.kind = "teacher_student"'
    )
    assert error_of({**BASE, "optimiser": {}}).startswith(
        "optimiser: unknown section (did you mean [optimizer]?)"
    )
    assert error_of({**BASE, "run": 3}) == "run = 3: expected a table [run], got an integer"
    assert error_of({**BASE, "observers": {"type": "loss"}}).startswith("observers = ")
    assert error_of({**BASE, "observers": [{"every": 2}]}).startswith(
        "observers[0].type: missing required key"
    )
    assert error_of({**BASE, "observers": [{"type": "betti", "max_dim": 4}]}) == (
        "observers[0].max_dim = 4: expected an integer 0 <= max_dim <= 3"
    )
    assert error_of({**BASE, "observers": [{"type": "loss"}, {"type": "loss"}]}).startswith(
        'observers[1].name = "loss": already used by observers[0]'
    )


def test_cross_key_checks():
    assert error_of(with_value("kernel.loss", "cross_entropy")) == (
        'kernel.loss = "cross_entropy": expected "mse" for data.kind = "teacher_student" (real-valued targets)'
    )
    raw = with_value("schedule.kind", "cosine")
    raw["schedule"].update(lr_min=0.5)
    assert error_of(raw) == "schedule: lr_min=0.5: expected 0 <= lr_min <= lr"


def test_toml_syntax_error_is_one_line():
    with pytest.raises(ScenarioError) as info:
        parse_scenario("[run]\nsteps = = 3\n", "bad.toml")
    assert str(info.value).startswith("bad.toml: not valid TOML:") and "\n" not in str(info.value)


def test_every_key_is_documented():
    text = describe_keys()
    for key in schema():
        assert f"  {key.path} : " in text, key.path
        assert key.doc
    for kind, observer_type in OBSERVER_TYPES.items():
        assert f'type = "{kind}"' in text
        for key in observer_type.options:
            assert f"observers.{key.path} : " in text and key.doc


def _signature_defaults(fn):
    return {
        name: p.default
        for name, p in inspect.signature(fn).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


@pytest.mark.parametrize(
    "kind, fn",
    [
        ("teacher_student", data.teacher_student),
        ("linear_teacher_task", data.linear_teacher_task),
        ("digits", data.load_digits_dataset),
    ],
)
def test_data_defaults_match_the_generators(kind, fn):
    defaults = _signature_defaults(fn)
    for key in schema():
        if key.path.startswith("data.") and key.when and kind in key.when and key.name in defaults:
            expected = defaults[key.name]
            if key.default is OPTIONAL:
                assert expected is None, key.path
            else:
                assert key.default == expected, key.path


def test_cloud_defaults_match_make_cloud():
    for key in schema():
        if (
            not key.path.startswith("init.")
            or key.default in (REQUIRED, OPTIONAL)
            or isinstance(key.default, Derived)
            or key.name == "embed"
        ):
            continue
        for shape in key.when:
            fn = clouds.SHAPES[shape]["fn"]
            assert _signature_defaults(fn)[key.name] == key.default, (key.path, shape)


def test_observer_option_defaults_match_the_classes():
    import importlib

    for kind, observer_type in OBSERVER_TYPES.items():
        module, name = observer_type.target.split(":")
        cls = getattr(importlib.import_module(module), name)
        defaults = _signature_defaults(cls.__init__)
        assert defaults["every"] == 1, kind
        for key in observer_type.options:
            if key.default in (REQUIRED, OPTIONAL) or isinstance(key.default, Derived):
                continue
            if key.name in defaults:
                expected = defaults[key.name]
                expected = list(expected) if isinstance(expected, tuple) else expected
                assert key.default == expected, (kind, key.name)


# ---------------------------------------------------------------- fuzzing
def _leaves():
    """(path, key) of every scalar key set in BASE that a plain checker validates."""
    keys = {
        k.path: k
        for k in schema()
        if k.when is None
        or "teacher_student" in k.when
        or "genus_region" in k.when
        or "adam" in k.when
        or "constant" in k.when
        or "two_layer" in k.when
    }
    return [
        (f"{s}.{n}", keys[f"{s}.{n}"])
        for s in BASE
        if s != "observers"
        for n in BASE[s]
        if f"{s}.{n}" in keys
    ]


LEAVES = _leaves()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(leaf=st.sampled_from(LEAVES), value=TOML_VALUES)
def test_fuzz_wrong_values_give_one_line_error_naming_the_key(leaf, value):
    path, key = leaf
    try:
        key.check.parse(value, key.name)
    except Invalid:
        pass
    else:
        assume(False)  # the value happens to be valid for this key
    message = error_of(with_value(path, value))
    assert message.startswith(f"{path} = "), message


@settings(max_examples=200, deadline=None)
@given(
    leaf=st.sampled_from([(p, k) for p, k in LEAVES if isinstance(k.check, (Int, Float))]), data_=st.data()
)
def test_fuzz_out_of_range_numbers(leaf, data_):
    path, key = leaf
    check = key.check
    candidates = []
    if check.lo is not None:
        candidates += [check.lo - 1] + ([check.lo] if getattr(check, "lo_open", False) else [])
    if check.hi is not None:
        candidates += [check.hi + 1] + ([check.hi] if getattr(check, "hi_open", False) else [])
    assume(candidates)
    value = data_.draw(st.sampled_from(candidates))
    assert error_of(with_value(path, value)).startswith(f"{path} = ")


@settings(max_examples=200, deadline=None)
@given(data_=st.data())
def test_fuzz_missing_and_unknown_keys(data_):
    raw = copy.deepcopy(BASE)
    section = data_.draw(st.sampled_from([s for s in BASE if s != "observers"]))
    if data_.draw(st.booleans()):
        name = data_.draw(
            st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=8)
        )
        assume(name not in {k.name for k in schema() if k.path.startswith(section + ".")})
        raw[section][name] = data_.draw(TOML_VALUES)
        assert error_of(raw).startswith(f"{section}.{name}: unknown key")
    else:
        required = [
            k
            for k in schema()
            if k.path.startswith(section + ".") and k.default is REQUIRED and k.name in raw[section]
        ]
        assume(required)
        key = data_.draw(st.sampled_from(required))
        del raw[section][key.name]
        assert error_of(raw).startswith(f"{key.path}: missing required key")


@settings(max_examples=300, deadline=None)
@given(data_=st.data())
def test_fuzz_any_mutation_is_valid_or_a_one_line_scenario_error(data_):
    raw = copy.deepcopy(BASE)
    for _ in range(data_.draw(st.integers(1, 3))):
        mutate(raw, data_.draw)
    try:
        resolved = validate_scenario(raw)
    except ScenarioError as exc:
        assert "\n" not in str(exc) and str(exc)
    else:
        assert ResolvedScenario.from_dict(resolved.to_dict()) == resolved


def test_init_output_scale_multiplies_the_output_coordinates_only():
    import numpy as np

    from particledyn.runner import prepare

    plain = prepare(validate_scenario(BASE)).positions
    scaled = prepare(validate_scenario(with_value("init.output_scale", 0.25))).positions
    d_out = 1  # teacher-student: one output weight per neuron, the last coordinate
    np.testing.assert_array_equal(scaled[:, :-d_out], plain[:, :-d_out])
    np.testing.assert_allclose(scaled[:, -d_out:], 0.25 * plain[:, -d_out:], rtol=1e-15)
    assert error_of(with_value("init.output_scale", 0.0)).startswith("init.output_scale = 0")


# ---------------------------------------------------------------- adversarial inputs (issue 15)
def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    plain = parse_scenario(TINY).resolved
    assert parse_scenario("\ufeff" + TINY).resolved == plain
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + TINY.encode())
    scenario = load_scenario(path)
    assert scenario.resolved == plain and not scenario.text.startswith("\ufeff")


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "x = " + "[" * 5000 + "]" * 5000,
            "<string>: not valid TOML for a scenario: arrays or tables nested too "
            "deeply (a scenario needs at most 16 levels)",
        ),
        (
            "x = " + "{a = " * 3000 + "1" + "}" * 3000,
            "<string>: not valid TOML for a scenario: arrays or tables nested too deeply",
        ),
        (
            TINY.replace("[run]\n", "[run]\nq = " + "[" * 17 + "]" * 17 + "\n"),
            "run.q: arrays or tables nested more than 16 levels deep: expected a value a scenario key takes",
        ),
    ],
)
def test_deep_nesting_is_a_one_line_error(text, expected):
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text)
    assert str(info.value).startswith(expected)
    nested = [1]
    for _ in range(20):
        nested = [nested]
    raw = {**copy.deepcopy(BASE), "output": {"subset": nested}}
    assert error_of(raw).startswith("output.subset: arrays or tables nested more than 16 levels deep")


def test_multi_layer_particle_count_is_checked_with_the_scenario():
    raw = {**copy.deepcopy(BASE), "kernel": {"kind": "multi_layer", "layers": [5, 5]}}
    assert error_of(raw) == (
        "init.n = 20: expected the sum of kernel.layers = 10 (one particle per neuron of [5, 5])"
    )
    raw["kernel"]["layers"] = [15, 5]
    assert validate_scenario(raw).kernel.layers == (15, 5)


def test_memory_is_estimated_before_anything_is_allocated():
    resolved = validate_scenario(BASE)  # adam: positions, field, update, two moments
    parts = estimate_bytes(resolved)
    assert parts == {"data.n": (50, 50 * (1 + 1 + 10) * 8), "init.n": (20, 20 * 2 * 8 * 5)}
    check_memory(resolved, available=sum(size for _, size in parts.values()))
    on_gpu = validate_scenario(with_value("run.backend", "cupy"))
    assert estimate_bytes(on_gpu)["init.n"] == (20, 20 * 2 * 8)
    huge = validate_scenario(with_value("init.n", 2_000_000_000))
    with pytest.raises(
        ScenarioError,
        match=r"^init\.n = 2000000000: the run needs at least 160 GB of memory "
        r"\(the particles: 160 GB\), more than the 8 GB of this machine; "
        r"expected a smaller init\.n$",
    ):
        check_memory(huge, available=8 * 10**9)
    big_data = validate_scenario(with_value("data.n", 1_000_000_000))
    with pytest.raises(ScenarioError, match=r"^data\.n = 1000000000: the run needs at least 96 GB"):
        check_memory(big_data, available=8 * 10**9)
    with (
        mock.patch("particledyn.scenario.memory.machine_memory", return_value=8 * 10**9),
        pytest.raises(ScenarioError, match=r"^init\.n = 2000000000: "),
    ):
        prepare(huge)


# Scenarios every part of which the fuzzers below may change: a cloud union, an observer with k, ...
FUZZ_BASES = [
    BASE,
    {
        **BASE,
        "kernel": {"kind": "multi_layer", "layers": [12, 8]},
        "init": {"shape": "union", "parts": [{"shape": "circle", "n": 20}]},
        "observers": [{"type": "sharpness", "k": 3}, {"type": "pairwise_lipschitz", "k": 4}],
    },
]
FUZZ_OUTCOMES: list = []  # built (True) or refused (False), one per example: printed with -s
_SMALL_MEMORY = 2**30  # the fuzzers build the parts: sizes 1 GiB cannot hold are refused
_CHOICES = sorted(
    {o for k in schema() if isinstance(k.check, Choice) for o in k.check.options} | set(OBSERVER_TYPES)
)
#: mostly values some key accepts (so that many mutants build), and any TOML value
PLAUSIBLE_VALUES = st.one_of(
    st.integers(-2, 40),
    st.floats(0, 2),
    st.sampled_from(_CHOICES),
    st.lists(st.integers(1, 6), min_size=1, max_size=3),
    TOML_VALUES,
)


def _builds_or_fails_in_one_line(raw) -> bool:
    """True when the scenario builds (its simulation and observers started, as a run begins);
    False when it is refused with a one-line ScenarioError."""
    try:
        with mock.patch("particledyn.scenario.memory.machine_memory", return_value=_SMALL_MEMORY):
            prepared = prepare(validate_scenario(raw))
    except ScenarioError as exc:
        assert "\n" not in str(exc) and str(exc)
        return False
    simulation = prepared.simulation(None)
    for observer in simulation.observers:
        observer.start(simulation)
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data_=st.data())
def test_fuzz_mutated_scenarios_build_or_fail_in_one_line(data_):
    """Validation and the building of every part (data, kernel, cloud, observers): no other exception."""
    raw = copy.deepcopy(data_.draw(st.sampled_from(FUZZ_BASES)))
    for _ in range(data_.draw(st.integers(1, 3))):
        mutate(raw, data_.draw, PLAUSIBLE_VALUES, leaf=data_.draw(st.booleans()))
    FUZZ_OUTCOMES.append(_builds_or_fails_in_one_line(raw))


_EDITS = st.sampled_from(
    [
        "[",
        "]",
        "{",
        "}",
        "=",
        '"',
        "'",
        ",",
        ".",
        "\n",
        "\ufeff",
        "\x00",
        "#",
        "0",
        "-",
        "1e999",
        "nan",
        "[[",
        "]]",
    ]
)


@settings(max_examples=150, deadline=None)
@given(data_=st.data())
def test_fuzz_edited_scenario_text_parses_or_fails_in_one_line(data_):
    text = toml_dumps(copy.deepcopy(data_.draw(st.sampled_from(FUZZ_BASES))))
    for _ in range(data_.draw(st.integers(1, 4))):
        at = data_.draw(st.integers(0, len(text)))
        cut = data_.draw(st.integers(0, 3))
        text = text[:at] + data_.draw(_EDITS) + text[at + cut :]
    try:
        parse_scenario(text)
    except ScenarioError as exc:
        assert "\n" not in str(exc) and str(exc)


def test_toml_writer_round_trips_the_fuzz_bases():
    for raw in FUZZ_BASES:
        assert parse_scenario(toml_dumps(raw)).resolved == validate_scenario(raw)


def test_fuzz_outcomes_cover_both_sides():
    """The mutation fuzzer above both builds scenarios and has them refused (run after it)."""
    if FUZZ_OUTCOMES:
        print(
            f"mutation fuzz: {len(FUZZ_OUTCOMES)} examples, {sum(FUZZ_OUTCOMES)} built, "
            f"{len(FUZZ_OUTCOMES) - sum(FUZZ_OUTCOMES)} refused in one line"
        )
        assert any(FUZZ_OUTCOMES) and not all(FUZZ_OUTCOMES)


def test_authors_starts_as_scenario_keys():
    """The 3-D start of the paper's code: solid double torus, Euler rotation, w -> 0.1 w - 2."""
    import numpy as np

    from particledyn.runner import prepare

    raw = copy.deepcopy(BASE)
    raw["data"]["d"] = 2
    raw["init"] = {
        "shape": "solid_double_torus",
        "n": 30,
        "seed": 4,
        "rotation": [0.6, 0.3, 1.1],
        "axis_scale": [0.1, 1, 1],
        "center": [-2, 0, 0],
    }
    positions = prepare(validate_scenario(raw)).positions
    native = clouds.solid_double_torus(30, seed=4) @ clouds.euler_rotation(0.6, 0.3, 1.1).T
    np.testing.assert_allclose(positions, native * [0.1, 1, 1] + [-2, 0, 0], rtol=0, atol=1e-15)
    raw["init"] = {"shape": "two_circles", "n": 30, "linear_map": [[0.1, 0], [0, 1]], "center": [-2, 0]}
    raw["data"]["d"] = 1
    np.testing.assert_allclose(
        prepare(validate_scenario(raw)).positions, clouds.two_circles(30) * [0.1, 1] + [-2, 0], atol=1e-15
    )
    raw["init"] = {"shape": "figure_eight", "n": 30, "size": 2.0}
    assert "init.size = 2.0: not used when init.shape" in error_of(raw)
    raw["init"] = {"shape": "figure_eight", "n": 30, "linear_map": [[1, 0]]}
    assert error_of(raw).startswith("init.linear_map")
    raw["init"] = {"shape": "figure_eight", "n": 30, "rotation": [1, 2]}
    assert error_of(raw).startswith("init.rotation")
