"""The typed resolved scenario (particledyn.scenario.resolved): its sections come from the schema,
it is frozen, converts to and from the dict a run file records, sets keys by dotted path, and no
code of the package reads it with ``[...]`` as the nested dict it replaced."""

import ast
import copy
import dataclasses
import json
import pickle
from pathlib import Path

import pytest
from scenario_fuzz import TINY

from particledyn.scenario import (
    KERNELS,
    OBSERVERS,
    SECTIONS,
    KernelType,
    ObserverType,
    ResolvedScenario,
    Section,
    default_scenario,
    parse_scenario,
    register_kernel,
    register_observer,
    schema,
    validate_scenario,
)
from particledyn.scenario.checks import OPTIONAL, Choice, Float, Int, Key, ScenarioError
from particledyn.scenario.resolved import Table, recorded
from particledyn.scenario.sections import DATA_KINDS, DataKind

PACKAGE = Path(__file__).resolve().parents[1] / "particledyn"


def test_the_sections_are_the_fields_and_their_keys_come_from_the_schema():
    resolved = default_scenario().resolved
    assert tuple(f.name for f in dataclasses.fields(ResolvedScenario)) == SECTIONS
    keys = {k.path: k for k in schema()}
    for section in SECTIONS[:-1]:
        value = getattr(resolved, section)
        assert isinstance(value, Section) and dataclasses.is_dataclass(value)
        names = [f.name for f in dataclasses.fields(value)]
        assert names == list(value.to_dict())
        assert all(f"{section}.{name}" in keys for name in names)
        # the field types are the keys' checkers' types
        for f in dataclasses.fields(value):
            key = keys[f"{section}.{f.name}"]
            assert f.type.startswith(key.check.annotation())
            assert f.type.endswith(" | None") == (key.default is OPTIONAL and key.check.annotation() != "Any")
    assert dataclasses.fields(resolved.output)[1].type == "int"  # output.frame_every: Int
    assert {f.name: f.type for f in dataclasses.fields(resolved.output)}[
        "subset"
    ] == "int | tuple[int, ...] | None"
    assert [o.type for o in resolved.observers][:2] == ["loss", "pairwise_lipschitz"]
    # one type per section and selector value, made once
    assert type(default_scenario().resolved.kernel) is type(resolved.kernel)
    assert type(resolved.observers[0]) is not type(resolved.observers[1])


def test_round_trip_through_the_recorded_dict_json_and_pickle():
    resolved = default_scenario().resolved
    record = resolved.to_dict()
    assert isinstance(record["observers"], list) and isinstance(record["observers"][4]["scale"], list)
    assert json.loads(json.dumps(record)) == record  # what the HDF5 file stores, as JSON
    assert ResolvedScenario.from_dict(record) == resolved
    assert ResolvedScenario.from_dict(json.loads(json.dumps(record))).to_dict() == record
    again = pickle.loads(pickle.dumps(resolved))
    assert again == resolved and hash(again) == hash(resolved) and type(again.run) is type(resolved.run)
    union = TINY.replace('[init]\nshape = "genus_region"\nn = 12', UNION)
    with_tables = parse_scenario(union).resolved
    assert isinstance(with_tables.init.parts[0], Table) and with_tables.init.parts[0]["n"] == 6
    assert ResolvedScenario.from_dict(with_tables.to_dict()) == with_tables
    assert pickle.loads(pickle.dumps(with_tables)) == with_tables


UNION = '[init]\nshape = "union"\nparts = [{shape = "circle", n = 6}, {shape = "circle", n = 6}]'


def test_a_file_written_before_a_key_existed_loads_with_its_default():
    record = parse_scenario(TINY).resolved.to_dict()
    old = copy.deepcopy(record)
    for key in ("plugins", "backend", "replicas", "replica_seeds", "replica_lrs", "divergence_growth"):
        del old["run"][key]
    del old["output"]["durability"]
    loaded = ResolvedScenario.from_dict(old)
    assert loaded.to_dict() == record and loaded.run.plugins == () and loaded.run.backend == "numba"
    with pytest.raises(ScenarioError, match=r"^output.frame_every = -1: expected an integer"):
        ResolvedScenario.from_dict({**record, "output": {**record["output"], "frame_every": -1}})
    with pytest.raises(ScenarioError, match="expected a table of sections"):
        ResolvedScenario.from_dict([1, 2])


def test_a_run_file_records_the_plain_dict(tmp_path):
    from particledyn.io import open_run
    from particledyn.runner import start_run

    scenario = parse_scenario(TINY)
    start_run(scenario, out=str(tmp_path / "t.h5"), progress=False)
    with open_run(str(tmp_path / "t.h5")) as run:
        stored = run.parameters["resolved"]
        assert stored == scenario.resolved.to_dict()
        assert recorded(run.parameters, "schedule.lr") == 0.01
        assert recorded(run.parameters, "init.missing", "d") == "d" and recorded({}, "run.steps") is None
    assert ResolvedScenario.from_dict(stored) == scenario.resolved


def test_an_unknown_key_is_an_attribute_error_naming_the_path():
    resolved = parse_scenario(TINY).resolved
    with pytest.raises(
        AttributeError, match=r"^output\.frame_evry: no such key \(did you mean frame_every\?\)"
    ):
        resolved.output.frame_evry  # noqa: B018
    with pytest.raises(
        AttributeError, match=r"^kernel\.hidden: no such key; the keys for kernel\.kind = .two_layer."
    ):
        resolved.kernel.hidden  # noqa: B018
    assert getattr(resolved.init, "parts", None) is None and resolved.init.n == 12
    with pytest.raises(TypeError, match="not subscriptable"):
        resolved["run"]  # noqa: B018
    with pytest.raises(TypeError, match="not subscriptable"):
        resolved.run["steps"]  # noqa: B018


def test_it_is_frozen():
    resolved = default_scenario().resolved
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.run = resolved.data
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.output.frame_every = 3
    with pytest.raises(AttributeError):
        resolved.observers.append(resolved.observers[0])
    assert resolved.observers[4].scale == (0.1,)  # arrays are tuples
    union = parse_scenario(TINY.replace('[init]\nshape = "genus_region"\nn = 12', UNION)).resolved
    with pytest.raises(TypeError):
        union.init.parts[0]["n"] = 7
    with pytest.raises(AttributeError):
        union.init.parts[0].x = 1
    # the dict is a copy: changing it leaves the scenario alone
    record = resolved.to_dict()
    record["observers"][4]["scale"].append(0.2)
    assert resolved.observers[4].scale == (0.1,)
    assert hash(resolved) == hash(default_scenario().resolved)


def test_with_changes_sets_keys_by_dotted_path_and_validates():
    resolved = parse_scenario(TINY).resolved
    changed = resolved.with_changes("schedule.lr", 0.5)
    assert changed.schedule.lr == 0.5 and resolved.schedule.lr == 0.01
    assert changed.to_dict() == {**resolved.to_dict(), "schedule": {"kind": "constant", "lr": 0.5}}
    both = resolved.with_changes({"init.n": 20, "run.seed": 3})
    assert (both.init.n, both.run.seed, both.data.seed) == (20, 3, 0)  # data.seed keeps its value
    # a selector: the keys the new choice does not take go, the ones it takes get their defaults
    adam = resolved.with_changes("optimizer.name", "adam")
    assert (adam.optimizer.beta1, adam.optimizer.beta2) == (0.9, 0.999)
    back = adam.with_changes("optimizer.name", "gd")
    assert back == resolved
    multi = resolved.with_changes({"kernel.kind": "multi_layer", "kernel.layers": [6, 6]})
    assert multi.kernel.layers == (6, 6) and not hasattr(multi.kernel, "loss")
    with pytest.raises(ScenarioError, match=r"^schedule\.lr = -1: expected lr > 0$"):
        resolved.with_changes("schedule.lr", -1)
    with pytest.raises(ScenarioError, match=r"^init\.n = 30: expected the sum of kernel\.layers"):
        multi.with_changes("init.n", 30)  # the cross checks run again
    with pytest.raises(ScenarioError, match="expected a dotted key"):
        resolved.with_changes("lr", 1.0)
    # dataclasses.replace works on the frozen value, unchecked
    assert dataclasses.replace(resolved, schedule=changed.schedule) == changed


def test_the_repr_lists_each_section_on_its_line():
    text = repr(parse_scenario(TINY).resolved)
    lines = text.splitlines()
    assert lines[0] == "ResolvedScenario(" and lines[-1] == ")"
    assert (
        "    kernel=KernelSection(kind='two_layer', activation='sigmoid', loss='mse', scaling='standard'),"
        in lines
    )
    assert "        ObserverSection(type='loss', every=1, name='loss')," in lines
    assert len(lines) == 2 + len(SECTIONS) + 2  # the observers' tuple opens and closes on its own lines


def test_plugin_kernels_observers_and_data_kinds_are_typed_too():
    from particledyn.data import make_dataset
    from particledyn.observers import Observer

    class Nothing(Observer):
        def observe(self, state, kernel, context):
            return {}

    register_kernel(
        KernelType(
            "typed_probe",
            "a probe kernel",
            (
                Key("kernel.width", Int(1, 10), "Width.", 3),
                Key("kernel.mode", Choice(("a", "b")), "Mode.", OPTIONAL),
            ),
            lambda options, dataset: None,
        )
    )
    register_observer(
        ObserverType(
            "typed_watch",
            "a probe observer",
            (Key("gain", Float(0.0), "Gain.", 1.5),),
            lambda o, c: Nothing(),
        )
    )
    DATA_KINDS.register(
        DataKind(
            "typed_data",
            "20 samples",
            (Key("data.rows", Int(1), "Rows.", 20),),
            lambda s: make_dataset({"name": "teacher_student", "d": 1, "n": s["rows"]}),
        )
    )
    try:
        text = TINY.replace('kind = "teacher_student"\nd = 1\nn = 40', 'kind = "typed_data"')
        text = text.replace("[init]", '[kernel]\nkind = "typed_probe"\nwidth = 7\n[init]')
        text += '[[observers]]\ntype = "typed_watch"\nevery = 2\n'
        resolved = parse_scenario(text).resolved
        assert resolved.kernel.width == 7 and resolved.kernel.mode is None
        assert {f.name: f.type for f in dataclasses.fields(resolved.kernel)} == {
            "kind": "str",
            "width": "int",
            "mode": "str | None",
        }
        assert resolved.observers[1].gain == 1.5 and resolved.observers[1].name == "typed_watch"
        assert {f.name: f.type for f in dataclasses.fields(resolved.observers[1])} == {
            "type": "str",
            "every": "int | str",
            "name": "str",
            "gain": "float",
        }
        assert resolved.data.rows == 20
        assert ResolvedScenario.from_dict(resolved.to_dict()) == resolved
        assert pickle.loads(pickle.dumps(resolved)) == resolved
        with pytest.raises(AttributeError, match=r"^kernel\.widht: no such key \(did you mean width\?\)"):
            resolved.kernel.widht  # noqa: B018
        assert resolved.with_changes("kernel.width", 9).kernel.width == 9
    finally:
        KERNELS.unregister("typed_probe")
        OBSERVERS.unregister("typed_watch")
        DATA_KINDS.unregister("typed_data")


def test_a_plugin_key_named_like_a_method_is_refused():
    register_kernel(
        KernelType("typed_clash", "a clash", (Key("kernel.to_dict", Int(), "Clash.", 1),), lambda o, d: None)
    )
    try:
        with pytest.raises(
            ScenarioError, match=r"^kernel\.to_dict: expected a key name that is an identifier \(no keyword\)"
        ):
            validate_scenario({**_raw(TINY), "kernel": {"kind": "typed_clash"}})
    finally:
        KERNELS.unregister("typed_clash")


def _raw(text):
    import tomllib

    return tomllib.loads(text)


# ---------------------------------------------------------------- no dict reads of it in the package
#: Names the resolved scenario travels under in the package.
TYPED_NAMES = {"resolved", "probe", "base", "stored"}
#: Names of plain tables that legitimately hold section-named keys: the parsed TOML (raw), the
#: dict a run file records (record), checkpoints, summaries and result rows.
PLAIN_NAMES = {
    "raw",
    "record",
    "checkpoint",
    "full",
    "summary",
    "row",
    "r",
    "e",
    "keep",
    "params",
    "table",
    "restored",
}
#: Functions that return plain tables (parsed text).
PARSERS = {"parse_toml", "loads", "load"}


def _name(node):
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _plain(node) -> bool:
    """A plain table: a name of PLAIN_NAMES (or ``x or {}`` of one), ``self.<attr>``, a constant's
    name (upper case) or parsed text."""
    if isinstance(node, ast.BoolOp):
        return _plain(node.values[0])
    if isinstance(node, ast.Name):
        return node.id in PLAIN_NAMES or node.id.isupper()
    if isinstance(node, ast.Attribute):
        return isinstance(node.value, ast.Name) and node.value.id == "self"
    return isinstance(node, ast.Call) and _name(node.func) in PARSERS


def _dict_reads(source: str) -> list[tuple[int, str]]:
    """Subscripts and ``.get`` calls that read a resolved scenario (or a section of it) as a dict."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript):
            target, key = node.value, node.slice
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            target, key = node.func.value, node.args[0] if node.args else None
        else:
            continue
        key_text = key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else None
        typed = _name(target) in TYPED_NAMES and not isinstance(
            key, ast.Slice
        )  # resolved[...], probe.get(...)
        section_of_typed = (  # resolved.run["seed"], ctx.resolved.output.get("path")
            isinstance(target, ast.Attribute)
            and target.attr in SECTIONS
            and _name(target.value) in TYPED_NAMES
        )
        section_key = key_text in SECTIONS and not _plain(target)  # x["run"] on anything but a plain table
        if typed or section_of_typed or section_key:
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_the_scan_finds_dict_reads_of_the_resolved_scenario():
    planted = (
        'a = resolved["output"]["frame_every"]\n'
        "b = prepared.resolved['run']\n"
        'c = probe["init"].get("n")\n'
        'd = ctx.resolved.run["seed"]\n'
        'e2 = scenario.resolved.kernel.get("scaling")\n'
        'f = cfg["schedule"]\n'
        'ok = raw["schedule"]; ok2 = record["run"]; ok3 = resolved.output.frame_every\n'
    )
    assert sorted(line for line, _ in _dict_reads(planted)) == [1, 2, 3, 4, 5, 6]


def test_no_code_of_the_package_reads_the_resolved_scenario_as_a_dict():
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {text}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, text in _dict_reads(path.read_text(encoding="utf-8"))
    ]
    assert found == []
