"""Scenario schema: defaults, documented keys, one-line errors naming the key path."""
import copy
import datetime
import inspect

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from particledyn import clouds, data
from particledyn.config import OBSERVER_TYPES
from particledyn.config.checks import OPTIONAL, REQUIRED, Derived, Float, Int, Invalid
from particledyn.runner import validate_scenario_resolved
from particledyn.scenario import (ScenarioError, default_scenario, describe_keys, parse_scenario, schema,
                                  validate_scenario)

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
    assert resolved["run"]["steps"] == 500 and resolved["data"]["kind"] == "teacher_student"
    assert resolved["data"]["seed"] == resolved["run"]["seed"]  # derived default
    assert resolved["output"]["path"] == "default.h5" and resolved["output"]["dtype"] == "float64"
    assert resolved["kernel"]["loss"] == "mse"
    assert [o["type"] for o in resolved["observers"]] == ["loss", "pairwise_lipschitz", "sharpness", "merges",
                                                          "betti"]
    assert resolved["observers"][1]["k"] == 6 and resolved["observers"][4]["scale"] == [0.1]
    # a resolved scenario validates to itself (what a resumed run relies on)
    assert validate_scenario_resolved(resolved) == resolved


def test_overrides_and_derived_defaults():
    resolved = validate_scenario(BASE, {"run.steps": 77})
    assert resolved["run"]["steps"] == 77
    assert resolved["optimizer"] == {"name": "adam", "weight_decay": 0.0, "batch_size": None,
                                     "sampling": "step",
                                     "beta1": 0.8, "beta2": 0.999, "eps": 1e-8}
    cosine = validate_scenario(with_value("schedule.kind", "cosine"), {"run.steps": 0})
    assert cosine["schedule"]["steps"] == 1
    shorthand = copy.deepcopy(BASE)
    shorthand["schedule"] = 0.25
    assert validate_scenario(shorthand)["schedule"] == {"kind": "constant", "lr": 0.25}
    assert validate_scenario({**BASE, "data": {"kind": "digits"}})["kernel"]["loss"] == "cross_entropy"
    sharp = {**BASE, "observers": [{"type": "sharpness"}]}
    assert validate_scenario(sharp)["observers"][0]["preconditioned"] is True


@pytest.mark.parametrize("path, value, expected", [
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
])
def test_bad_values_name_the_key(path, value, expected):
    assert error_of(with_value(path, value)) == expected


def test_unknown_missing_and_misplaced_keys():
    assert error_of(with_value("optimizer.bta1", 0.5)).startswith(
        "optimizer.bta1: unknown key (did you mean beta1?); valid keys for optimizer.name = \"adam\":")
    assert error_of(with_value("optimizer.beta", 0.5)) == (
        'optimizer.beta = 0.5: not used when optimizer.name = "adam" (only for momentum)')
    raw = copy.deepcopy(BASE)
    del raw["run"]["steps"]
    assert error_of(raw) == "run.steps: missing required key (an integer steps >= 0)"
    raw = copy.deepcopy(BASE)
    del raw["data"]["d"]
    assert error_of(raw) == ('data.d: missing required key (an integer 1 <= d <= 100000) '
                             'for data.kind = "teacher_student"')
    assert error_of({**BASE, "optimiser": {}}).startswith("optimiser: unknown section (did you mean [optimizer]?)")
    assert error_of({**BASE, "run": 3}) == "run = 3: expected a table [run], got an integer"
    assert error_of({**BASE, "observers": {"type": "loss"}}).startswith("observers = ")
    assert error_of({**BASE, "observers": [{"every": 2}]}).startswith("observers[0].type: missing required key")
    assert error_of({**BASE, "observers": [{"type": "betti", "max_dim": 4}]}) == (
        "observers[0].max_dim = 4: expected an integer 0 <= max_dim <= 3")
    assert error_of({**BASE, "observers": [{"type": "loss"}, {"type": "loss"}]}).startswith(
        'observers[1].name = "loss": already used by observers[0]')


def test_cross_key_checks():
    assert error_of(with_value("kernel.loss", "cross_entropy")) == (
        'kernel.loss = "cross_entropy": expected "mse" for data.kind = "teacher_student" (real-valued targets)')
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
    return {name: p.default for name, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


@pytest.mark.parametrize("kind, fn", [("teacher_student", data.teacher_student),
                                      ("linear_teacher_task", data.linear_teacher_task),
                                      ("digits", data.load_digits_dataset)])
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
        if not key.path.startswith("init.") or key.default in (REQUIRED, OPTIONAL) or \
                isinstance(key.default, Derived) or key.name == "embed":
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
    keys = {k.path: k for k in schema() if k.when is None or "teacher_student" in k.when
            or "genus_region" in k.when or "adam" in k.when or "constant" in k.when or "two_layer" in k.when}
    return [(f"{s}.{n}", keys[f"{s}.{n}"]) for s in BASE if s != "observers" for n in BASE[s]
            if f"{s}.{n}" in keys]


LEAVES = _leaves()
TOML_VALUES = st.one_of(
    st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=True), st.booleans(), st.text(max_size=12),
    st.datetimes(min_value=datetime.datetime(1900, 1, 1)), st.just([]), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


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
@given(leaf=st.sampled_from([(p, k) for p, k in LEAVES if isinstance(k.check, (Int, Float))]),
       data_=st.data())
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
        name = data_.draw(st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=8))
        assume(name not in {k.name for k in schema() if k.path.startswith(section + ".")})
        raw[section][name] = data_.draw(TOML_VALUES)
        assert error_of(raw).startswith(f"{section}.{name}: unknown key")
    else:
        required = [k for k in schema() if k.path.startswith(section + ".") and k.default is REQUIRED
                    and k.name in raw[section]]
        assume(required)
        key = data_.draw(st.sampled_from(required))
        del raw[section][key.name]
        assert error_of(raw).startswith(f"{key.path}: missing required key")


def _mutate(tree, draw):
    """Replace one random node of a nested dict/list with a random TOML value."""
    node = tree
    while True:
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        if not children:
            return
        slot, child = draw(st.sampled_from(children))
        if isinstance(child, (dict, list)) and child and draw(st.booleans()):
            node = child
            continue
        node[slot] = draw(TOML_VALUES)
        return


@settings(max_examples=300, deadline=None)
@given(data_=st.data())
def test_fuzz_any_mutation_is_valid_or_a_one_line_scenario_error(data_):
    raw = copy.deepcopy(BASE)
    for _ in range(data_.draw(st.integers(1, 3))):
        _mutate(raw, data_.draw)
    try:
        resolved = validate_scenario(raw)
    except ScenarioError as exc:
        assert "\n" not in str(exc) and str(exc)
    else:
        assert validate_scenario_resolved(resolved) == resolved


def test_init_output_scale_multiplies_the_output_coordinates_only():
    import numpy as np

    from particledyn.runner import prepare

    plain = prepare(validate_scenario(BASE)).positions
    scaled = prepare(validate_scenario(with_value("init.output_scale", 0.25))).positions
    d_out = 1  # teacher-student: one output weight per neuron, the last coordinate
    np.testing.assert_array_equal(scaled[:, :-d_out], plain[:, :-d_out])
    np.testing.assert_allclose(scaled[:, -d_out:], 0.25 * plain[:, -d_out:], rtol=1e-15)
    assert error_of(with_value("init.output_scale", 0.0)).startswith("init.output_scale = 0")


def test_authors_starts_as_scenario_keys():
    """The 3-D start of the paper's code: solid double torus, Euler rotation, w -> 0.1 w - 2."""
    import numpy as np

    from particledyn.runner import prepare

    raw = copy.deepcopy(BASE)
    raw["data"]["d"] = 2
    raw["init"] = {"shape": "solid_double_torus", "n": 30, "seed": 4, "rotation": [0.6, 0.3, 1.1],
                   "axis_scale": [0.1, 1, 1], "center": [-2, 0, 0]}
    positions = prepare(validate_scenario(raw)).positions
    native = clouds.solid_double_torus(30, seed=4) @ clouds.euler_rotation(0.6, 0.3, 1.1).T
    np.testing.assert_allclose(positions, native * [0.1, 1, 1] + [-2, 0, 0], rtol=0, atol=1e-15)
    raw["init"] = {"shape": "two_circles", "n": 30, "linear_map": [[0.1, 0], [0, 1]], "center": [-2, 0]}
    raw["data"]["d"] = 1
    np.testing.assert_allclose(prepare(validate_scenario(raw)).positions,
                               clouds.two_circles(30) * [0.1, 1] + [-2, 0], atol=1e-15)
    raw["init"] = {"shape": "figure_eight", "n": 30, "size": 2.0}
    assert "init.size = 2.0: not used when init.shape" in error_of(raw)
    raw["init"] = {"shape": "figure_eight", "n": 30, "linear_map": [[1, 0]]}
    assert error_of(raw).startswith("init.linear_map")
    raw["init"] = {"shape": "figure_eight", "n": 30, "rotation": [1, 2]}
    assert error_of(raw).startswith("init.rotation")
