"""Plugins: modules named by ``[run] plugins`` or by ``particledyn.plugins`` entry points register
kernels and observers that the CLI, a resume, ``info`` and a sweep's Dask workers all see; the
worked example package of docs/examples is really installed (into a folder, not the venv) and run."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from run_files import png_is_drawn

from particledyn import plugins
from particledyn.clouds import SHAPES
from particledyn.optimizers import OPTIMIZERS as OPTIMIZER_CLASSES
from particledyn.scenario import (
    KERNELS,
    OBSERVERS,
    KernelType,
    describe_keys,
    parse_scenario,
    register_kernel,
)
from particledyn.scenario.checks import ScenarioError
from particledyn.scenario.sections import (
    CLOUD_SHAPES,
    DATA_KINDS,
    OPTIMIZERS,
    SCHEDULES,
    DataKind,
    ScheduleType,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "particledyn-example-plugin"

# a user's plugin module: a numpy kernel pulling every particle to the origin, L = 1/2 sum m |x|^2
PLUGIN = textwrap.dedent("""
    import numpy as np
    from particledyn import Kernel
    from particledyn.scenario import Key, KernelType, register_kernel
    from particledyn.scenario.checks import Int

    class Pull(Kernel):
        name = "pull"
        def __init__(self, dim):
            self.dim = dim
        def field(self, positions, masses, context):
            return -positions
        def loss(self, positions, masses, context):
            return 0.5 * float(masses @ np.sum(positions ** 2, axis=1))

    register_kernel(KernelType("{kind}", "pull to the origin", (Key("kernel.dim", Int(1, 8), "D.", 2),),
                               lambda options, dataset: Pull(options["dim"])))
""")

SCENARIO = textwrap.dedent("""
    [run]
    name = "pulled"
    steps = 6
    threads = 1
    plugins = ["{module}"]
    [data]
    kind = "teacher_student"
    d = 1
    n = 20
    [kernel]
    kind = "{kind}"
    [init]
    shape = "gaussian"
    n = 30
    [schedule]
    lr = 0.1
    [output]
    checkpoint_every = 2
    [[observers]]
    type = "loss"
""")


def _cli(args, cwd, pythonpath=None, timeout=600):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    return subprocess.run(
        [sys.executable, "-m", "particledyn", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def user_plugin(tmp_path, monkeypatch, request):
    """A plugin module ``<name>`` on sys.path registering kernel ``<name>_pull``; removed afterwards."""
    module = f"user_plugin_{request.node.name.split('[')[0][-20:]}"
    kind = f"{module}_pull"
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / f"{module}.py").write_text(PLUGIN.format(kind=kind))
    monkeypatch.syspath_prepend(str(folder))
    yield folder, module, kind
    sys.modules.pop(module, None)
    plugins._loaded.pop(module, None)
    if kind in KERNELS._entries:
        KERNELS.unregister(kind)


# ---------------------------------------------------------------- in-process
def test_a_run_plugins_module_is_imported_before_validation(user_plugin):
    _, module, kind = user_plugin
    with pytest.raises(ScenarioError, match=f'kernel.kind = "{kind}": expected one of "two_layer"'):
        parse_scenario(SCENARIO.format(module=module, kind=kind).replace(f'plugins = ["{module}"]', ""))
    resolved = parse_scenario(SCENARIO.format(module=module, kind=kind)).resolved
    assert resolved.run.plugins == (module,) and resolved.kernel.to_dict() == {"kind": kind, "dim": 2}
    assert f"[kernel.kind = {kind}]" in describe_keys()


@pytest.mark.parametrize(
    "value, message",
    [
        ('"mod"', 'run.plugins = "mod": expected an array of module names'),
        ('["a b"]', "expected an array of module names"),
        ('["m", "m"]', "expected distinct module names"),
        (
            '["no_such_module_xyz"]',
            "run.plugins: cannot import plugin 'no_such_module_xyz' (ModuleNotFoundError",
        ),
    ],
)
def test_bad_run_plugins_are_one_line_errors(value, message):
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(SCENARIO.format(module="m", kind="two_layer").replace('["m"]', value))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_plugin_that_raises_on_import_is_named(tmp_path, monkeypatch):
    (tmp_path / "broken_plugin_abc.py").write_text("raise RuntimeError('half written')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        plugins.PluginError,
        match=r"cannot import plugin 'broken_plugin_abc' "
        r"\(RuntimeError: half written\)",
    ):
        plugins.load_plugins(["broken_plugin_abc"])
    assert "broken_plugin_abc" not in sys.modules


def test_the_built_in_entries_come_from_particledyns_entry_points():
    from importlib.metadata import entry_points

    points = {ep.value for ep in entry_points(group=plugins.GROUP) if ep.dist.name == "particledyn"}
    assert points == {
        "particledyn.scenario.builtin_kernels",
        "particledyn.scenario.builtin_observers",
        "particledyn.scenario.builtin_sections",
    }
    assert {"two_layer", "multi_layer", "task_switching"} <= set(KERNELS)
    assert {"loss", "betti", "merges", "sharpness"} <= set(OBSERVERS)
    assert set(DATA_KINDS) >= {"teacher_student", "mnist"} and set(SCHEDULES) >= {"constant", "cosine"}
    assert set(CLOUD_SHAPES) == set(SHAPES) and set(OPTIMIZERS) == set(OPTIMIZER_CLASSES)
    own = {r["module"] for r in plugins.loaded_plugins(own=True) if r["dist"] == "particledyn"}
    assert own == points and not {r["module"] for r in plugins.loaded_plugins()} & points


def test_an_installation_without_particledyns_entry_points_says_so(monkeypatch):
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: [])
    monkeypatch.setitem(plugins._state, "entry_points", "no")
    with pytest.raises(
        plugins.PluginError,
        match="particledyn's own particledyn.plugins entry points are "
        r"missing .* reinstall it \(pip install -e \. in a checkout\)",
    ):
        plugins.load_entry_points()
    assert plugins._state["entry_points"] == "no"


def test_threads_reading_a_registry_at_once_all_see_the_built_in_entries():
    # a Dask worker's threads may read the registries first at the same moment: one loads, the rest wait
    code = textwrap.dedent("""
        import threading
        from particledyn.scenario import KERNELS
        seen, start = [], threading.Barrier(8)
        def read():
            start.wait()
            seen.append(tuple(KERNELS))
        threads = [threading.Thread(target=read) for _ in range(8)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        print(len(set(seen)), seen[0])
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.split("\n")[0] == "1 ('two_layer', 'multi_layer', 'task_switching')", done.stderr


# ---------------------------------------------------------------- registries
def test_a_registry_refuses_duplicates_names_unknown_entries_and_lists_new_ones():
    two_layer = KERNELS["two_layer"]
    with pytest.raises(
        ValueError,
        match=r'kernel.kind = "two_layer": already registered by '
        r"particledyn.scenario.builtin_kernels",
    ):
        register_kernel(two_layer)
    with pytest.raises(
        ScenarioError,
        match=r'kernel.kind = "nope": expected one of "two_layer", '
        r'"multi_layer", "task_switching"',
    ):
        KERNELS.get_entry("nope")
    with pytest.raises(ScenarioError, match=r'observers.type = "nope": expected one of "loss", '):
        OBSERVERS.get_entry("nope")
    extra = KernelType("registry_probe", "a probe", (), two_layer.build)
    try:
        register_kernel(extra)
        assert KERNELS.names()[-1] == "registry_probe" and '"registry_probe"' in KERNELS.unknown_text()
        assert register_kernel(extra, replace=True) is extra
    finally:
        KERNELS.unregister("registry_probe")
    assert "registry_probe" not in KERNELS


@pytest.mark.parametrize(
    "registry, path, first",
    [
        (DATA_KINDS, "data.kind", "teacher_student"),
        (CLOUD_SHAPES, "init.shape", "genus_region"),
        (OPTIMIZERS, "optimizer.name", "gd"),
        (SCHEDULES, "schedule.kind", "constant"),
    ],
)
def test_every_section_registry_names_unknown_entries_and_refuses_duplicates(registry, path, first):
    with pytest.raises(ScenarioError) as caught:
        registry.get_entry("nope")
    assert str(caught.value).startswith(f'{path} = "nope": expected one of "{first}", ')
    assert all(f'"{name}"' in str(caught.value) for name in registry)
    with pytest.raises(
        ValueError, match=f'{path} = "{first}": already registered by particledyn.scenario.builtin_sections'
    ):
        registry.register(registry[first])


def test_a_registered_schedule_and_data_kind_are_usable_from_a_scenario():
    from particledyn.data import make_dataset
    from particledyn.runner import prepare
    from particledyn.scenario.checks import Float, Key

    halving = ScheduleType(
        "probe_halving",
        "lr / 2 per 2 steps",
        (Key("schedule.half_life", Float(0.0, lo_open=True), "Steps per halving.", 2.0),),
        lambda s: lambda step: s["lr"] * 0.5 ** (step / s["half_life"]),
    )
    tiny = DataKind(
        "probe_tiny",
        "teacher_student with 20 samples",
        (),
        lambda section: make_dataset({"name": "teacher_student", "d": 1, "n": 20, "seed": section["seed"]}),
    )
    SCHEDULES.register(halving)
    DATA_KINDS.register(tiny)
    try:
        text = SCENARIO.format(module="m", kind="two_layer").replace('plugins = ["m"]', "")
        text = text.replace('kind = "teacher_student"\nd = 1\nn = 20', 'kind = "probe_tiny"')
        text = text.replace("lr = 0.1", 'lr = 0.1\nkind = "probe_halving"\nhalf_life = 4.0')
        resolved = parse_scenario(text).resolved
        assert resolved.schedule.to_dict() == {"kind": "probe_halving", "lr": 0.1, "half_life": 4.0}
        with pytest.raises(
            ScenarioError,
            match='schedule.every = 3: not used when schedule.kind = "probe_halving" \\(only for step\\)',
        ):
            parse_scenario(text.replace("half_life = 4.0", "every = 3"))
        prepared = prepare(resolved)
        assert prepared.schedule(8) == pytest.approx(0.025) and prepared.dataset.n_train == 14
        assert "probe_halving" in describe_keys() and "schedule.half_life" in describe_keys()
    finally:
        SCHEDULES.unregister("probe_halving")
        DATA_KINDS.unregister("probe_tiny")


# ---------------------------------------------------------------- the command line
def test_a_user_kernel_runs_resumes_and_shows_in_info_from_the_command_line(user_plugin, tmp_path):
    folder, module, kind = user_plugin
    (tmp_path / "s.toml").write_text(SCENARIO.format(module=module, kind=kind))
    done = _cli(["run", "s.toml", "--out", "a.h5", "--no-plot"], tmp_path, [folder])
    assert done.returncode == 0, done.stderr
    resumed = _cli(["run", "--resume", "--out", "a.h5", "--steps", "10", "--no-plot"], tmp_path, [folder])
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed a.h5 at step 6: now at step 10" in resumed.stdout
    info = json.loads(_cli(["info", "a.h5", "--json"], tmp_path, [folder]).stdout)
    assert info["plugins"] == [
        {
            "name": module,
            "module": module,
            "source": "run.plugins",
            "dist": None,
            "version": None,
            "loaded": True,
        }
    ]
    # without the module the resume says which plugin is missing, exit 2, the file untouched
    missing = _cli(["run", "--resume", "--out", "a.h5", "--steps", "12", "--no-plot"], tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"error: a.h5: the run's plugin: cannot import plugin '{module}' (ModuleNotFoundError: No module "
        f"named '{module}'); expected a module importable here (installed, or on PYTHONPATH)"
    ]
    assert json.loads(_cli(["info", "a.h5", "--json"], tmp_path).stdout)["checkpoint_step"] == 10
    assert "NOT importable here" in _cli(["info", "a.h5"], tmp_path).stdout


def test_an_entry_point_that_cannot_be_imported_stops_every_command_with_one_line(tmp_path):
    info = tmp_path / "site" / "broken_dist-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-dist\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[particledyn.plugins]\nbroken = gone_module_xyz\n")
    done = _cli(["keys"], tmp_path, [tmp_path / "site"])
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: plugin 'broken' (gone_module_xyz, entry point of broken-dist): cannot import it: "
        "ModuleNotFoundError: No module named 'gone_module_xyz'"
    ]


# ---------------------------------------------------------------- the worked example, installed
@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """The example package built and installed into a folder (the venv is not changed)."""
    work = tmp_path_factory.mktemp("example")
    source, target = work / "source", work / "site"
    shutil.copytree(EXAMPLE, source)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        timeout=600,
    )
    assert (target / "particledyn_example_plugin" / "spread.py").is_file()
    return target


def _radius(path):
    import particledyn as pdyn

    with pdyn.open_run(path) as run:
        return np.asarray(run.observable("example_radius", "radius")[1])


@pytest.mark.slow
def test_the_example_plugin_runs_resumes_and_appears_in_the_verdict(installed_example, tmp_path):
    shutil.copy(EXAMPLE / "example.toml", tmp_path)
    done = _cli(["run", "example.toml", "--steps", "40", "--out", "e.h5"], tmp_path, [installed_example])
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "e_summary.json").read_text())
    assert summary["topology_preserved"] is True
    # the observer type's summarize hook: its result in the summary and the verdict, by type and name
    (record,) = summary["observers"]
    assert record["type"] == record["name"] == "example_radius" and record["error"] is None
    assert record["result"]["target"] == 2.0 and abs(record["result"]["final"] - 2.0) < 0.05
    phrase = (
        f"example_radius: radius {record['result']['final']:.3g} at step 40 (initial "
        f"{record['result']['initial']:.3g}, max "
    )
    assert phrase in summary["verdict"] and summary["observer_notes"] == []
    assert f"verdict: {summary['verdict']}" in done.stdout
    # and its figure hook: radius against step beside the built-in figures, the run named in the title
    figure = tmp_path / "e_figures" / "example_radius.png"
    assert png_is_drawn(figure) and (tmp_path / "e_figures" / "betti.png").is_file()
    assert "figures: 6 in" in done.stdout
    assert summary["loss"]["final_train"] < 0.01 * summary["loss"]["initial_train"]
    radius = _radius(tmp_path / "e.h5")
    assert abs(radius[-1] - 2.0) < 0.1 * abs(radius[0] - 2.0)  # sqrt(radius2): the kernel's target
    resumed = _cli(
        ["run", "--resume", "--out", "e.h5", "--steps", "60", "--no-plot"], tmp_path, [installed_example]
    )
    assert resumed.returncode == 0, resumed.stderr
    assert len(_radius(tmp_path / "e.h5")) == 60 // 5 + 1
    info = json.loads(_cli(["info", "e.h5", "--json"], tmp_path, [installed_example]).stdout)
    assert info["plugins"] == [
        {
            "name": "example",
            "module": "particledyn_example_plugin",
            "source": "entry point",
            "dist": "particledyn-example-plugin",
            "version": "0.1.0",
            "loaded": True,
        }
    ]
    assert set(info["observables"]) == {"loss", "example_radius", "merges", "betti"}
    keys = _cli(["keys"], tmp_path, [installed_example]).stdout
    assert 'type = "example_radius"' in keys and "example_spread" in keys


@pytest.mark.slow
def test_the_example_plugin_is_swept_on_dask_workers(installed_example, tmp_path):
    shutil.copy(EXAMPLE / "example.toml", tmp_path)
    text = (EXAMPLE / "sweep.toml").read_text()
    text = text.replace("lr = [0.02, 0.05]", "lr = [0.05]").replace("seed = [0, 1]", "seed = [3]")
    (tmp_path / "sweep.toml").write_text(text.replace("workers = 2", "workers = 1"))
    done = _cli(["sweep", "sweep.toml"], tmp_path, [installed_example])
    assert done.returncode == 0, done.stderr
    rows = (tmp_path / "example_sweep" / "summary.csv").read_text().splitlines()
    header, (row,) = rows[0].split(","), rows[1:]
    values = dict(zip(header, row.split(",")))
    assert values["status"] == "finished" and values["topology_preserved"] == "1"
    run = tmp_path / "example_sweep" / "runs" / "n200_seed3_lr0.05.h5"
    assert len(_radius(run)) == 40 // 5 + 1
    info = json.loads(_cli(["info", str(run), "--json"], tmp_path, [installed_example]).stdout)
    assert [p["module"] for p in info["plugins"]] == ["particledyn_example_plugin"]


def test_an_absolute_rate_sweep_runs_a_rule_without_a_loss_hessian(user_plugin):
    """K0 = lambda_max needs the kernel's Hessian-vector products; a user's rule without them
    still runs in a sweep of absolute rates (no eta* needed), its eta K0 NaN; a sweep in units of
    eta* refuses the point in one line instead."""
    import json
    import math

    from particledyn.sweep import read_table

    folder, module, kind = user_plugin
    rule = PLUGIN.replace(
        'name = "pull"', 'name = "pull"\n    is_gradient = False  # a rotation added: no loss'
    )
    rule = rule.replace("return -positions", "return -positions + positions[:, ::-1] * [1.0, -1.0]")
    (folder / f"{module}.py").write_text(rule.format(kind=kind))
    base = folder / "base.toml"
    base.write_text(SCENARIO.format(module=module, kind=kind).replace('type = "loss"', 'type = "merges"'))
    sweep = folder / "sweep.toml"
    sweep.write_text(
        f'[sweep]\nname = "pulls"\nbase = "{base}"\n[grid]\nlr = [0.05, 0.2]\n[sharpness]\nevery = 0\n[cluster]\nworkers = 1\n'
    )
    done = _cli(["sweep", str(sweep), "--out", str(folder / "out")], folder, pythonpath=[folder])
    assert done.returncode == 0, done.stderr
    table = read_table(folder / "out" / "summary.csv")
    assert table["status"].tolist() == ["finished", "finished"]
    assert np.all(np.isnan(table["lr_factor"]))
    assert [math.isnan(v) for v in json.loads((folder / "out" / "K0.json").read_text()).values()] == [True]
    collected = _cli(
        ["sweep", str(sweep), "--out", str(folder / "out"), "--collect"], folder, pythonpath=[folder]
    )
    assert collected.returncode == 0, collected.stderr
    assert read_table(folder / "out" / "summary.csv")["status"].tolist() == ["finished", "finished"]
    sweep.write_text(sweep.read_text().replace("lr = [0.05, 0.2]", "lr_factor = [0.5]"))
    refused = _cli(["sweep", str(sweep), "--out", str(folder / "eta_star")], folder, pythonpath=[folder])
    assert refused.returncode == 1
    assert "K0 measurement failed" in read_table(folder / "eta_star" / "summary.csv")["error"][0]
