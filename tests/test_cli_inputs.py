"""Adversarial input to the command: every corpus case (deep nesting, wrong group sizes, out-of-range k,
absurd sizes, malformed values, ...) and randomly mutated scenarios give one line on stderr starting
with ``error:``, exit 2, no output file (no temporary file either) and no traceback; a UTF-8 BOM is
accepted; a closed stdout pipe ends the command quietly."""

import contextlib
import copy
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scenario_fuzz import CORPUS, TINY, TOML_VALUES, mutate, toml_dumps, write_corpus_file
from test_cli import files_in
from test_scenario import FUZZ_BASES, PLAUSIBLE_VALUES

from particledyn.cli import main
from particledyn.runner import prepare
from particledyn.scenario import ScenarioError, validate_scenario

_SMALL_MEMORY = 2**30


def _run(directory, *args):
    """``main(["run", ...])`` in-process with --no-plots; returns (status, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main(["run", *args, "--out", str(Path(directory) / "out.h5"), "--no-plots"])
    return status, err.getvalue()


def _assert_refused(status, err, directory, scenario_name, expected=""):
    err = err.strip()
    assert status == 2, err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert expected in err, err
    assert files_in(Path(directory)) == [scenario_name]  # no output, no hidden temporary file


@pytest.mark.parametrize("name", CORPUS)
def test_corpus_case_is_a_one_line_error_without_output(name, tmp_path):
    text, expected = CORPUS[name]
    path = write_corpus_file(tmp_path, name, text)
    _assert_refused(*_run(tmp_path, str(path)), tmp_path, path.name, expected)


def test_corpus_through_the_real_command(tmp_path):
    """The same cases in fresh processes (no traceback printed by the interpreter either)."""
    processes = {}
    for name, (text, _) in CORPUS.items():
        (tmp_path / name).mkdir()
        write_corpus_file(tmp_path / name, name, text)
        processes[name] = subprocess.Popen(
            [sys.executable, "-m", "particledyn", "run", f"{name}.toml", "--out", "out.h5"],
            cwd=tmp_path / name,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    for name, process in processes.items():
        out, err = process.communicate(timeout=300)
        _assert_refused(process.returncode, err, tmp_path / name, f"{name}.toml", CORPUS[name][1])


@pytest.mark.parametrize(
    "edit, expected",
    [
        (("n = 12", "n = 2000000000"), "error: init.n = 2000000000: the run needs at least "),
        (("n = 40", "n = 2147483647"), "error: data.n = 2147483647: the run needs at least "),
    ],
)
def test_absurd_sizes_are_refused_before_allocating(edit, expected, tmp_path):
    path = tmp_path / "big.toml"
    path.write_text(TINY.replace(*edit))
    with mock.patch("particledyn.scenario.memory.machine_memory", return_value=8 * 10**9):
        status, err = _run(tmp_path, str(path))
    _assert_refused(status, err, tmp_path, "big.toml", expected)
    assert "more than the 8 GB of this machine" in err


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + TINY.encode())
    status, err = _run(tmp_path, str(path))
    assert status == 0, err
    assert files_in(tmp_path) == ["bom.toml", "out.h5"]


def _with_closed_stdout(*args, cwd):
    """Run the command with stdout a pipe whose reader has gone (``| head`` after it exits)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "particledyn", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            timeout=300,
        )
    finally:
        os.close(write)


def test_a_closed_stdout_pipe_ends_quietly(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    assert _run(tmp_path, str(path))[0] == 0
    for args in (["keys"], ["show-default"], ["info", "out.h5"], ["--help"]):
        done = _with_closed_stdout(*args, cwd=tmp_path)
        # argparse itself ignores a failed write of --help and exits 0
        expected = 0 if args == ["--help"] else 1
        assert (done.returncode, done.stderr) == (expected, ""), (args, done.stderr[-2000:])


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data_=st.data())
def test_fuzz_refused_mutations_through_the_command(data_):
    """Randomly mutated scenarios written as TOML: each one the parts refuse is, through the command,
    one line, exit 2 and no file."""
    raw = copy.deepcopy(data_.draw(st.sampled_from(FUZZ_BASES)))
    for _ in range(data_.draw(st.integers(1, 3))):
        mutate(raw, data_.draw, st.one_of(PLAUSIBLE_VALUES, TOML_VALUES), leaf=data_.draw(st.booleans()))
    try:
        with mock.patch("particledyn.scenario.memory.machine_memory", return_value=_SMALL_MEMORY):
            prepare(validate_scenario(raw))
        return  # a scenario that builds would run: the scenario fuzzers cover these
    except ScenarioError:
        pass
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "s.toml").write_text(toml_dumps(raw), encoding="utf-8", errors="surrogatepass")
        with mock.patch("particledyn.scenario.memory.machine_memory", return_value=_SMALL_MEMORY):
            status, err = _run(directory, str(Path(directory) / "s.toml"))
        _assert_refused(status, err, directory, "s.toml")
