"""The command's surface: --set, validate, info --json and API-written files, packaged scenarios
(also from a built wheel), width, flag spellings, bash completion, the progress bar's label and
loss, the compiling-kernels notice, figure options."""

import importlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from run_files import write_records

from particledyn import open_run
from particledyn.cli import build_parser, main
from particledyn.compile_notice import COMPILE_NOTICE, announce_compilation, kernels_cold
from particledyn.paper_scenarios import list_scenarios
from particledyn.scenario import parse_override
from particledyn.scenario.checks import ScenarioError

REPO = Path(__file__).resolve().parent.parent

TINY = """\
[run]
name = "tiny"
steps = 6
seed = 0
threads = 1
[data]
kind = "teacher_student"
d = 1
n = 40
[init]
shape = "genus_region"
n = 12
[schedule]
lr = 0.01
[output]
checkpoint_every = 3
[[observers]]
type = "loss"
"""


def tiny(tmp_path) -> str:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return str(path)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    "text, expected",
    [
        ("schedule.lr=0.05", ("schedule.lr", 0.05)),
        ("run.steps=10", ("run.steps", 10)),
        ("output.optimizer_state=true", ("output.optimizer_state", True)),
        ("run.name=lr05", ("run.name", "lr05")),
        ('run.name="a b"', ("run.name", "a b")),
        ("init.center=[1.5, 0]", ("init.center", [1.5, 0])),
        (" run.seed = 3 ", ("run.seed", 3)),
    ],
)
def test_set_values_are_read_as_toml_else_as_strings(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["schedule.lr", "lr=1", "a.b.c=1", ".lr=1", "schedule.=1"])
def test_malformed_set_is_refused(text):
    with pytest.raises(ScenarioError, match="expected section.key=value"):
        parse_override(text)


def test_set_is_validated_recorded_shown_and_resumed(tmp_path, capsys):
    scenario, out = tiny(tmp_path), tmp_path / "a.h5"
    assert (
        main(
            [
                "run",
                scenario,
                "--set",
                "schedule.lr=0.02",
                "--set",
                "run.name=lr02",
                "--steps",
                "4",
                "--out",
                str(out),
                "--no-plot",
            ]
        )
        == 0
    )
    with open_run(out) as run:
        parameters = run.parameters
    assert parameters["resolved"]["schedule"]["lr"] == 0.02 and parameters["name"] == "lr02"
    assert parameters["overrides"] == {"schedule.lr": 0.02, "run.name": "lr02", "run.steps": 4}
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "run 'lr02'" in text and "schedule.lr = 0.02" in text
    # the resumed run continues the stored scenario (its lr 0.02), and one checked against it
    assert main(["run", "--resume", "--out", str(out), "--steps", "6", "--no-plot"]) == 0
    assert main(["run", scenario, "--resume", "--out", str(out), "--steps", "8", "--no-plot"]) == 1
    assert "run.name is 'lr02' in the file but 'tiny' in the scenario" in one_line_error(capsys)
    assert (
        main(
            [
                "run",
                scenario,
                "--set",
                "schedule.lr=0.02",
                "--set",
                "run.name=lr02",
                "--resume",
                "--out",
                str(out),
                "--steps",
                "8",
                "--no-plot",
            ]
        )
        == 0
    )
    with open_run(out) as run:
        assert run.finished and int(run.steps[-1]) == 8


@pytest.mark.parametrize(
    "setting, expected",
    [
        ("schedule.lr=-1", "schedule.lr = -1: expected lr > 0"),
        ("schedule.lrr=1", "schedule.lrr: unknown key (did you mean lr?)"),
        ("sched.lr=1", "sched: unknown section (did you mean [schedule]?)"),
        ("observers.type=1", "observers.type: [observers] is an array"),
        ("run.steps=many", 'run.steps = "many": expected an integer'),
        ("lr=1", "--set 'lr=1': expected section.key=value"),
    ],
)
def test_bad_set_exits_2_without_output(tmp_path, capsys, setting, expected):
    assert main(["run", tiny(tmp_path), "--set", setting, "--out", str(tmp_path / "a.h5")]) == 2
    assert expected in one_line_error(capsys)
    assert not (tmp_path / "a.h5").exists()


def test_set_with_resume_needs_the_scenario(tmp_path, capsys):
    assert main(["run", "--resume", "--out", str(tmp_path / "a.h5"), "--set", "schedule.lr=1"]) == 2
    assert "--set with --resume" in one_line_error(capsys)


def test_validate(tmp_path, capsys):
    scenario = tiny(tmp_path)
    assert main(["validate", scenario]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"OK {scenario}: run 'tiny', 6 steps") and "\n" not in out and "lr 0.01" in out
    assert main(["validate", scenario, "--set", "schedule.lr=0.5"]) == 0
    assert "lr 0.5" in capsys.readouterr().out
    Path(scenario).write_text(TINY.replace("n = 12", "n = -3"))
    assert main(["validate", scenario]) == 2
    assert "init.n = -3" in one_line_error(capsys)
    assert main(["validate", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read scenario" in one_line_error(capsys)
    assert list(tmp_path.iterdir()) == [Path(scenario)]


def test_info_json_and_api_written_files(tmp_path, capsys):
    path = write_records(
        tmp_path / "api.h5", {"loss": [(0, {"loss": 1.0}), (5, {"loss": 0.5})]}, finished=False
    )
    assert main(["info", "--json", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["status"] == "stopped" and info["scenario_written"] is False
    assert info["dim"] == 2 and info["written"] == 10 and info["observables"] == {"loss": {"loss": 2}}
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert "None" not in text and "written through the Python API" in text
    assert "not resumable by particledyn run" in text and "--resume" not in text
    assert "D = 2; 10 written as float64" in text


def test_packaged_scenarios_list_and_copy(tmp_path, capsys, monkeypatch):
    expected = {p.stem for p in (REPO / "scenarios").glob("*.toml")}
    expected |= {f"authors/{p.stem}" for p in (REPO / "scenarios" / "authors").glob("*.toml")}
    assert set(list_scenarios()) == expected and "authors/authors_gd_2d_small" in expected
    assert main(["scenarios", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(expected)
    assert any(line.startswith("table1_gd_2d_small ") and "Table 1" in line for line in lines)
    monkeypatch.chdir(tmp_path)
    assert main(["scenarios", "copy", "table1_gd_2d_small"]) == 0
    copied = tmp_path / "table1_gd_2d_small.toml"
    assert copied.read_text() == (REPO / "scenarios" / "table1_gd_2d_small.toml").read_text()
    assert main(["validate", str(copied)]) == 0
    assert main(["scenarios", "copy", "authors_gd_2d_small", "sub.toml"]) == 0
    assert (tmp_path / "sub.toml").read_text().startswith("# The paper authors' command")
    capsys.readouterr()
    assert main(["scenarios", "copy", "table1_gd_2d_small"]) == 1
    assert "exists; not replaced" in one_line_error(capsys)
    assert main(["scenarios", "copy", "table1_gd_2d_smal"]) == 2
    assert "did you mean table1_gd_2d_small" in one_line_error(capsys)


@pytest.mark.slow
def test_the_wheel_ships_the_scenarios(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(REPO),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("particledyn-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = list((REPO / "scenarios").glob("*.toml")) + list((REPO / "scenarios/authors").glob("*.toml"))
    for source in sources:
        relative = source.relative_to(REPO / "scenarios")
        assert f"particledyn/scenarios/paper/{relative}" in names, relative
    assert "particledyn/scenarios/default.toml" in names and "particledyn/kernels/__init__.py" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # the unpacked wheel comes first on sys.path: the installed package, not this checkout
    probe = (
        "import particledyn, particledyn.paper_scenarios as p; "
        "print(particledyn.__file__); print(p.scenario_folder()); print(len(p.list_scenarios()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert out[0].startswith(str(site)) and out[1].startswith(str(site)), out
    assert int(out[2]) == len(list_scenarios())


def test_one_spelling_of_the_plot_flag():
    parser = build_parser()
    assert parser.parse_args(["run"]).plots is True
    assert parser.parse_args(["run", "--no-plot"]).plots is False
    assert parser.parse_args(["run", "--no-plots"]).plots is False  # the old spelling still works
    run_help = parser._subparsers._group_actions[0].choices["run"].format_help()
    assert "--no-plot " in run_help and "--no-plots" not in run_help and "--plots" not in run_help


def test_width_is_a_subcommand(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["width", "--help"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith("usage: particledyn width [-h] [--sizes SIZES")
    (tmp_path / "bad.toml").write_text("[run]\nsteps = -1\n")
    assert main(["width", str(tmp_path / "bad.toml"), "--sizes", "10"]) == 2
    assert "run.steps = -1" in one_line_error(capsys)
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "    width " in capsys.readouterr().out


def complete(words: str, tmp_path) -> list[str]:
    script = tmp_path / "completion.bash"
    script.write_text(
        subprocess.run(
            [sys.executable, "-m", "particledyn", "completion", "bash"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    cword = len(words.split(" ")) - 1
    command = (
        f'source {script}; COMP_WORDS=({words}); [[ "{words}" == *" " ]] && COMP_WORDS+=(""); '
        f"COMP_CWORD={cword}; _particledyn_complete; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    )
    # the script calls the command itself for scenario names: put this interpreter's on PATH
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    done = subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
        env={**os.environ, "PATH": path},
    )
    return done.stdout.split()


def test_bash_completion(tmp_path):
    assert complete("particledyn ru", tmp_path) == ["run"]
    assert set(complete("particledyn v", tmp_path)) == {"validate"}
    assert set(complete("particledyn run --no-p", tmp_path)) == {"--no-plot", "--no-progress"}
    assert set(complete("particledyn plot a.h5 --format ", tmp_path)) == {"png", "pdf", "svg"}
    assert set(complete("particledyn scenarios ", tmp_path)) >= {"list", "copy"}
    assert set(complete("particledyn scenarios copy table1_gd_2d_s", tmp_path)) == {"table1_gd_2d_small"}
    (tmp_path / "mine.toml").write_text("")
    assert "mine.toml" in complete("particledyn validate mi", tmp_path)


def test_progress_bar_shows_the_run_name_and_the_loss(tmp_path, capsys):
    scenario = tiny(tmp_path)
    assert (
        main(
            [
                "run",
                scenario,
                "--set",
                "run.name=ladder_lr02",
                "--out",
                str(tmp_path / "a.h5"),
                "--no-plot",
                "--progress",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "ladder_lr02:" in err and "6/6" in err and "loss=" in err


COLD_MODULE = """
import numba

@numba.njit(cache=True)
def twice(x):
    return 2 * x


class Kernel:
    pass
"""


def test_compile_notice_when_the_kernel_cache_is_cold(tmp_path, monkeypatch):
    (tmp_path / "cold_kernel_probe.py").write_text(COLD_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("cold_kernel_probe")
    assert kernels_cold("cold_kernel_probe")
    stream = io.StringIO()
    assert not announce_compilation(module.Kernel(), False, stream)  # no bar wanted: quiet
    assert announce_compilation(module.Kernel(), True, stream)
    assert stream.getvalue() == COMPILE_NOTICE + "\n"
    assert module.twice(2) == 4  # compiles and writes the cache
    assert not kernels_cold("cold_kernel_probe")
    assert not kernels_cold("no_such_module_prefix")
    # a new process finds the cache on disk: warm before its first call
    probe = (
        "import cold_kernel_probe; from particledyn.compile_notice import kernels_cold; "
        "print(kernels_cold('cold_kernel_probe'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_figure_format_and_dpi_options(tmp_path, capsys):
    path = write_records(tmp_path / "r.h5", {"loss": [(0, {"loss": 1.0}), (5, {"loss": 0.5})]})
    with pytest.raises(SystemExit) as stop:
        main(["plot", str(path), "--dpi", "0"])
    assert stop.value.code == 2 and "'0': expected an integer > 0" in capsys.readouterr().err
    status = main(["plot", str(path), "--format", "svg", "--dpi", "200", "--out", str(tmp_path / "f")])
    assert status == 0 and list((tmp_path / "f").glob("*.svg")) and not list((tmp_path / "f").glob("*.png"))


def test_the_gpu_install_hint_is_a_command_that_works(monkeypatch):
    from particledyn.backends import GpuUnavailableError, _import_cupy

    monkeypatch.setitem(sys.modules, "cupy", None)  # as if cupy were not installed
    with pytest.raises(GpuUnavailableError, match=r"in the particledyn checkout: pip install -e '\.\[gpu\]'"):
        _import_cupy()
    assert "pip install -e '.[gpu]'" in (REPO / "docs" / "gpu.md").read_text()
    assert "pip install 'particledyn[" not in (REPO / "docs" / "gpu.md").read_text()
