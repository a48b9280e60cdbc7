"""Sweeps as a cluster runs them: an external scheduler with relative paths and a killed worker,
no workers left, claims between concurrent sweeps, job-array shards assembled by --collect,
grid axes over any scenario key, dask-jobqueue, and unwritable output folders."""

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from particledyn.sweep import SweepError, collect_sweep, parse_sweep, read_table, run_sweep, sweep_main
from particledyn.sweep.claims import ClaimHeld, acquire, claim_path, holder
from particledyn.sweep.executor import execute_run, selected_indices
from particledyn.sweep.grid import expand_runs, run_ids

BASE = os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "scenarios", "sweeps", "teacher_student_base.toml")
)
SWEEP = f"""
[sweep]
name = "cl"
base = "{BASE}"
steps = {{steps}}
plot = false
[grid]
lr_factor = [0.1, 2.0]
seed = [0, 1]
n = [32]
"""


def sweep_file(tmp_path, steps=6, extra=""):
    path = tmp_path / "s.toml"
    path.write_text(SWEEP.format(steps=steps) + extra)
    return path


@pytest.fixture(scope="module")
def client():
    import logging

    import distributed

    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


# ---------------------------------------------------------------- claims
def test_a_claim_is_exclusive_until_released(tmp_path):
    run = str(tmp_path / "r.h5")
    with acquire(run):
        info = holder(run)
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
        with pytest.raises(ClaimHeld, match=f"pid {os.getpid()} on {socket.gethostname()}"):
            acquire(run)
    assert holder(run) is None and not os.path.exists(claim_path(run))
    acquire(run).release()


def test_the_heartbeat_keeps_a_claim_fresh_and_a_silent_one_goes_stale(tmp_path):
    run = str(tmp_path / "r.h5")
    claim = acquire(run, heartbeat=0.05, stale=1.0)
    os.utime(claim_path(run), (time.time() - 100, time.time() - 100))
    time.sleep(0.3)
    assert holder(run, stale=1.0)["age"] < 1.0  # the heartbeat touched it again
    claim.release()
    # a claim of another host whose heartbeat stopped 40 s ago is stale: taken over
    with open(claim_path(run), "w") as f:
        json.dump({"host": "elsewhere", "pid": 1, "token": "t"}, f)
    assert holder(run) is not None  # fresh: live, whatever host
    os.utime(claim_path(run), (time.time() - 40, time.time() - 40))
    assert holder(run) is None
    acquire(run).release()


def test_a_claim_of_a_dead_process_on_this_host_is_stale_at_once(tmp_path):
    run = str(tmp_path / "r.h5")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with open(claim_path(run), "w") as f:
        json.dump({"host": socket.gethostname(), "pid": dead.pid, "token": "t"}, f)
    assert holder(run) is None
    acquire(run).release()


def test_a_claimed_run_is_neither_run_nor_launched_twice(tmp_path, client):
    sweep = sweep_file(tmp_path)
    out = tmp_path / "out"
    first = run_sweep(sweep, out=out, client=client, limit=0, progress=False)
    target = first.rows[0]
    with acquire(target["path"]):  # another sweep is running this run
        spec = parse_sweep(sweep.read_text(), str(sweep), tmp_path)
        run = next(
            r for r in expand_runs(spec, _K0_of(spec, first.rows), out) if r.run_id == target["run_id"]
        )
        outcome = execute_run(run)
        assert outcome["status"] == "running" and "is being run by pid" in outcome["error"]
        second = run_sweep(sweep, out=out, client=client, limit=1, progress=False)
    by_id = {r["run_id"]: r for r in second.rows}
    assert by_id[target["run_id"]]["status"] == "running"
    ran = [r for r in second.rows if r["status"] == "finished"]
    assert len(ran) == 1 and ran[0]["run_id"] != target["run_id"]  # --limit 1 took the next run
    assert not os.path.exists(target["path"])


def _K0_of(spec, rows):
    from particledyn.sweep.grid import grid_points

    by_seed = {r["seed"]: r["K0"] for r in rows}
    return {p: by_seed[p[0]] for p in grid_points(spec)}


# ---------------------------------------------------------------- shards and --collect
def test_a_four_part_job_array_collects_into_the_table_of_one_sweep(tmp_path, client):
    sweep = sweep_file(tmp_path)
    whole = run_sweep(sweep, out=tmp_path / "whole", client=client, progress=False)
    parts = tmp_path / "parts"
    for i in range(4):
        part = run_sweep(sweep, out=parts, client=client, progress=False, shard=(i, 4))
        assert part.table_csv is None and len(part.rows) == 1
        assert not (parts / "summary.csv").exists()
    collected = collect_sweep(sweep, out=parts)
    a, b = read_table(whole.table_h5), read_table(collected.table_h5)
    assert list(a["run_id"]) == list(b["run_id"]) and set(b["status"]) == {"finished"}
    for column in a:
        if column in ("path", "elapsed"):
            continue
        if a[column].dtype.kind == "f":
            np.testing.assert_array_equal(a[column], b[column], err_msg=column)
        else:
            assert list(a[column]) == list(b[column]), column
    from particledyn.io import open_run

    for run_id in a["run_id"]:  # the same trajectories, bit for bit
        with (
            open_run(str(tmp_path / "whole" / "runs" / f"{run_id}.h5")) as r1,
            open_run(str(parts / "runs" / f"{run_id}.h5")) as r2,
        ):
            np.testing.assert_array_equal(r1.positions(r1.steps[-1]), r2.positions(r2.steps[-1]))


def test_collect_before_every_part_ran_reports_pending_runs(tmp_path, client):
    sweep = sweep_file(tmp_path)
    out = tmp_path / "out"
    run_sweep(sweep, out=out, client=client, progress=False, index=0)
    collected = collect_sweep(sweep, out=out)
    statuses = [r["status"] for r in collected.rows]
    assert statuses[0] == "finished" and set(statuses[1:]) <= {"pending"} and len(statuses) == 4
    assert sweep_main([str(sweep), "--collect", "--out", str(out)]) == 1


def test_list_numbers_the_runs_as_index_selects_them(tmp_path, capsys):
    sweep = sweep_file(tmp_path)
    assert sweep_main([str(sweep), "--list", "--out", str(tmp_path / "o")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    spec = parse_sweep(sweep.read_text(), str(sweep), tmp_path)
    assert [line.split("\t")[1] for line in lines] == run_ids(spec)
    assert all(line.endswith("\tmissing") for line in lines)
    assert selected_indices(spec, shard=(1, 3)) == [1]
    assert selected_indices(spec, shard=(0, 3)) == [0, 3]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--shard", "4/4"], "--shard '4/4': expected I/K"),
        (["--shard", "x"], "--shard 'x': expected I/K"),
        (["--index", "4"], "--index 4: expected an integer 0 <= I < 4"),
    ],
)
def test_bad_parts_are_one_line_errors(tmp_path, capsys, args, message):
    sweep = sweep_file(tmp_path)
    assert sweep_main([str(sweep), *args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "o" / "runs").exists()


def test_collect_without_a_sweep_folder_is_a_one_line_error(tmp_path, capsys):
    assert sweep_main([str(sweep_file(tmp_path)), "--collect", "--out", str(tmp_path / "none")]) == 2
    assert "no sweep folder" in capsys.readouterr().err


# ---------------------------------------------------------------- grid axes over any key
def test_a_grid_axis_over_any_scenario_key(tmp_path, client):
    sweep = (
        sweep_file(tmp_path, steps=3)
        .read_text()
        .replace("seed = [0, 1]", 'seed = [0]\n"optimizer.name" = ["gd", "momentum"]')
    )
    path = tmp_path / "axes.toml"
    path.write_text(sweep)
    result = run_sweep(path, out=tmp_path / "out", client=client, progress=False)
    ids = [r["run_id"] for r in result.rows]
    assert ids == [
        "n32_seed0_optimizer.name-gd_x0.1",
        "n32_seed0_optimizer.name-gd_x2",
        "n32_seed0_optimizer.name-momentum_x0.1",
        "n32_seed0_optimizer.name-momentum_x2",
    ]
    assert [r["axes"] for r in result.rows] == ["optimizer.name=gd"] * 2 + ["optimizer.name=momentum"] * 2
    assert all(r["status"] == "finished" for r in result.rows)
    from particledyn.io import open_run

    for row, name in zip(result.rows, ["gd", "gd", "momentum", "momentum"]):
        with open_run(row["path"]) as run:
            assert run.parameters["resolved"]["optimizer"]["name"] == name
    assert list(read_table(result.table_csv)["axes"]) == [r["axes"] for r in result.rows]


@pytest.mark.parametrize(
    "axis, message",
    [
        ('"optimizer.nme" = ["gd"]', "optimizer.nme"),
        ('"schedule.lr" = [0.1]', "grid.schedule.lr: set by the sweep itself"),
        ('"optimizer.name" = []', "grid.optimizer.name = []: expected a non-empty array"),
        ('"optimizer.name" = ["gd", "gd"]', "expected distinct values"),
        ('"optimizer.name" = ["gd", "sgdd"]', "sgdd"),
    ],
)
def test_bad_grid_axes_are_one_line_errors(tmp_path, axis, message):
    text = SWEEP.format(steps=3).replace("n = [32]", f"n = [32]\n{axis}")
    with pytest.raises(SweepError) as info:
        parse_sweep(text, "s.toml", tmp_path)
    assert message in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------- where the runs go
def test_an_output_folder_the_workers_cannot_write_is_refused_before_any_launch(tmp_path, client):
    sweep = sweep_file(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "runs").write_text("a file where the runs folder should be")
    with pytest.raises(SweepError, match="not writable from a worker"):
        run_sweep(sweep, out=out, client=client, progress=False)
    assert not (out / "K0.json").exists()


def test_the_write_probe_waits_for_a_busy_worker_and_stops_when_there_is_none(tmp_path):
    """The probe's patience runs only while no worker is up: a worker busy beyond it (as one still
    importing on a loaded node) is waited for; a scheduler without workers stops it in time."""
    import distributed

    from particledyn.sweep.cluster import NoWorkersError, check_workers_can_write

    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        busy = c.submit(time.sleep, 3.0, pure=False)  # holds the only thread for 3 s > the patience
        began = time.monotonic()
        check_workers_can_write(c, str(tmp_path / "runs"), timeout=1.0)
        assert time.monotonic() - began >= 2.0 and busy.done()
        assert (tmp_path / "runs").is_dir()
    with (
        distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster,
        distributed.Client(cluster) as c,
    ):
        began = time.monotonic()
        with pytest.raises(NoWorkersError, match="no Dask worker up for 1 s"):
            check_workers_can_write(c, str(tmp_path / "none"), timeout=1.0)
        assert time.monotonic() - began < 30


def test_dask_jobqueue_runs_the_sweep_as_batch_jobs(tmp_path):
    sweep = sweep_file(
        tmp_path, steps=3, extra='[cluster]\njobqueue = "local"\njobs = 1\noptions = { memory = "2GB" }\n'
    )
    result = run_sweep(sweep, out=tmp_path / "out", progress=False)
    assert [r["status"] for r in result.rows] == ["finished"] * 4


def _start(cmd, cwd, env):
    return subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )


@pytest.fixture
def external(tmp_path):
    """A `dask scheduler` and two `dask worker` processes, started in a folder of their own."""
    port = _free_port()
    where = tmp_path / "cluster_cwd"
    where.mkdir()
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = {
        "scheduler": _start([*dask, "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], where, env)
    }
    address = f"tcp://127.0.0.1:{port}"
    for i in range(2):
        procs[f"worker{i}"] = _start(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_worker",
                address,
                "--nworkers",
                "1",
                "--nthreads",
                "1",
                "--no-dashboard",
                "--no-nanny",
                "--name",
                f"w{i}",
            ],
            where,
            env,
        )
    import distributed

    try:  # the processes go also when the cluster never comes up (they outlived a failed setup)
        with distributed.Client(address, timeout="30s") as c:
            c.wait_for_workers(2, timeout=60)
        yield address, procs, where
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_external_scheduler_relative_out_and_a_killed_worker(tmp_path, external, monkeypatch):
    address, procs, where = external
    client_cwd = tmp_path / "client_cwd"
    client_cwd.mkdir()
    sweep = sweep_file(tmp_path, steps=60)
    monkeypatch.chdir(client_cwd)
    import threading

    def kill_a_worker_once_a_run_is_under_way():
        deadline = time.time() + 60
        while time.time() < deadline:
            if list((client_cwd / "rel").glob("runs/*.h5.claim")):
                os.killpg(procs["worker0"].pid, signal.SIGKILL)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker_once_a_run_is_under_way)
    killer.start()
    status = sweep_main([str(sweep), "--address", address, "--out", "rel", "--no-progress"])
    killer.join()
    assert procs["worker0"].poll() is not None, "the worker was not killed"
    if status != 0:  # a run on the killed worker is 'failed' this call: the next call resumes it
        status = sweep_main([str(sweep), "--address", address, "--out", "rel", "--no-progress"])
    assert status == 0
    table = read_table(client_cwd / "rel" / "summary.csv")
    assert set(table["status"]) == {"finished"} and (table["last_step"] == 60).all()
    assert all(p.startswith(str(client_cwd / "rel")) for p in table["path"])
    assert not list(where.rglob("*.h5")), "a run file went to the workers' own folder"


def test_the_sweep_stops_with_a_clear_error_when_no_worker_is_left(tmp_path, external, capsys):
    address, procs, _ = external
    sweep = sweep_file(tmp_path, steps=4000, extra="[cluster]\nno_worker_timeout = 3\n")
    import threading

    def kill_both_when_running():
        deadline = time.time() + 60
        while time.time() < deadline:
            if list((tmp_path / "out").glob("runs/*.h5.claim")):
                break
            time.sleep(0.05)
        for name in ("worker0", "worker1"):
            os.killpg(procs[name].pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_both_when_running)
    killer.start()
    began = time.time()
    status = sweep_main([str(sweep), "--address", address, "--out", str(tmp_path / "out"), "--no-progress"])
    killer.join()
    assert status == 1 and time.time() - began < 120
    assert "no Dask worker left for 3 s" in capsys.readouterr().err


# ---------------------------------------------------------------- bisection
def test_bisection_brackets_the_smallest_rate_of_divergence(tmp_path, client):
    text = (
        SWEEP.format(steps=60).replace("lr_factor = [0.1, 2.0]\n", "").replace("seed = [0, 1]", "seed = [0]")
    )
    path = tmp_path / "b.toml"
    path.write_text(
        text + '[sharpness]\nevery = 0\n[bisect]\nevent = "diverged"\nlo = 0.5\nhi = 1024.0\niterations = 4\n'
    )
    result = run_sweep(path, out=tmp_path / "out", client=client, progress=False)
    (bracket,) = result.bisection
    assert bracket["status"] == "bracketed" and bracket["runs"] == 6
    lo, hi = bracket["lo_factor"], bracket["hi_factor"]
    assert 0.5 <= lo < hi <= 1024.0 and hi / lo == pytest.approx((1024.0 / 0.5) ** (1 / 16))
    by_factor = {r["lr_factor"]: r["status"] for r in result.rows}
    assert by_factor[hi] == "diverged" and by_factor[lo] == "finished"
    # every rate tried below lo kept finite, every one above hi diverged: the bracket is monotone
    for factor, status in by_factor.items():
        assert status == ("diverged" if factor >= hi else "finished"), (factor, status)
    again = run_sweep(path, out=tmp_path / "out", client=client, progress=False)  # resumes: nothing reruns
    assert again.bisection == result.bisection


def test_collect_of_a_bisection_lists_its_midpoints_and_waits_on_a_missing_one(tmp_path, client):
    text = (
        SWEEP.format(steps=60).replace("lr_factor = [0.1, 2.0]\n", "").replace("seed = [0, 1]", "seed = [0]")
    )
    path = tmp_path / "b.toml"
    path.write_text(
        text + '[sharpness]\nevery = 0\n[bisect]\nevent = "diverged"\nlo = 0.5\nhi = 1024.0\niterations = 3\n'
    )
    out = tmp_path / "out"
    ran = run_sweep(path, out=out, client=client, progress=False)
    assert len(ran.rows) == 5  # both ends and 3 midpoints
    collected = collect_sweep(path, out=out)
    by_id = {r["run_id"]: r for r in ran.rows}
    assert sorted(r["run_id"] for r in collected.rows) == sorted(by_id)
    for row in collected.rows:
        assert row["status"] == by_id[row["run_id"]]["status"]
        assert row["lr_factor"] == by_id[row["run_id"]]["lr_factor"]
        assert row["elapsed"] == pytest.approx(by_id[row["run_id"]]["elapsed"])  # kept from the table
    assert collected.bisection == ran.bisection
    assert sweep_main([str(path), "--collect", "--out", str(out)]) == 0
    assert len(read_table(out / "summary.csv")["run_id"]) == 5
    # the last round's run file gone (the rounds run one after another): its bracket waits on it
    last = max(ran.rows, key=lambda r: os.path.getmtime(r["path"]))
    os.remove(last["path"])
    waiting = collect_sweep(path, out=out)
    statuses = {r["run_id"]: r["status"] for r in waiting.rows}
    assert statuses[last["run_id"]] == "pending" and len(statuses) == 5
    (bracket,) = waiting.bisection
    assert bracket["status"] == "pending" and last["run_id"] in bracket["error"] and bracket["onset"] == ""
    assert sweep_main([str(path), "--collect", "--out", str(out)]) == 1


@pytest.mark.parametrize(
    "extra, message",
    [
        ('[bisect]\nevent = "merges"\n', "bisect.event = 'merges'"),
        ("[bisect]\nlo = 2.0\nhi = 1.0\n", "expected lo < hi"),
        ("[bisect]\niterations = 0\n", "bisect.iterations = 0"),
    ],
)
def test_bad_bisections_are_one_line_errors(tmp_path, extra, message):
    text = SWEEP.format(steps=3).replace("lr_factor = [0.1, 2.0]\n", "") + extra
    with pytest.raises(SweepError) as info:
        parse_sweep(text, "s.toml", tmp_path)
    assert message in str(info.value)
    with pytest.raises(SweepError, match="chooses its own rates"):
        parse_sweep(SWEEP.format(steps=3) + '[bisect]\nevent = "merge"\n', "s.toml", tmp_path)


@pytest.mark.parametrize("threshold", [0.7, 3.7, 63.0])
def test_the_bracket_holds_the_threshold_and_shrinks_geometrically(threshold):
    from particledyn.sweep.bisect import BisectPoint

    bounds, iterations = (0.5, 64.0), 5
    state = BisectPoint((0, 32), 1.0, *bounds)
    for _ in range(iterations + 1):
        for factor in state.next_factors(bounds):
            state.update(factor, factor >= threshold, bounds)
    assert state.status == "bracketing" and len(state.tried) == iterations + 2
    assert state.lo < threshold <= state.hi
    assert state.hi / state.lo == pytest.approx((64.0 / 0.5) ** (1 / 2**iterations))


def test_a_range_that_misses_the_event_says_so():
    from particledyn.sweep.bisect import BisectPoint

    for event_at, status in ((lambda f: True, "event_at_lo"), (lambda f: False, "no_event_at_hi")):
        state = BisectPoint((0, 32), 1.0, 0.5, 64.0)
        for factor in state.next_factors((0.5, 64.0)):
            state.update(factor, event_at(factor), (0.5, 64.0))
        assert state.status == status and state.next_factors((0.5, 64.0)) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_the_running_runs_on_an_external_scheduler_and_a_rerun_completes(
    tmp_path, external, signum
):
    from particledyn.io import open_run
    from particledyn.runner import run_info

    address, procs, _ = external
    steps = 1500
    sweep = sweep_file(tmp_path, steps=steps, extra="[sharpness]\nevery = 0\n")
    args = [
        sys.executable,
        "-m",
        "particledyn",
        "sweep",
        str(sweep),
        "--address",
        address,
        "--no-progress",
        "--out",
    ]
    proc = subprocess.Popen([*args, str(tmp_path / "out")], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((tmp_path / "out").glob("runs/*.h5.claim"))) < 2:
        time.sleep(0.05)
    time.sleep(1.0)  # the two runs are under way
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "stopping the running runs" in err and "run the sweep again to resume" in err
    assert not list((tmp_path / "out").glob("runs/*.claim")), "a run went on after the sweep exited"
    stopped = [run_info(str(p)) for p in (tmp_path / "out").glob("runs/*.h5")]
    assert stopped and all(i["status"] == "stopped" and i["checkpoint_step"] < steps for i in stopped)
    assert subprocess.run([*args, str(tmp_path / "out")], capture_output=True).returncode == 0
    assert subprocess.run([*args, str(tmp_path / "ref")], capture_output=True).returncode == 0
    for ref in (tmp_path / "ref").glob("runs/*.h5"):
        with open_run(str(ref)) as a, open_run(str(tmp_path / "out" / "runs" / ref.name)) as b:
            assert a.finished and b.finished
            np.testing.assert_array_equal(a.positions(a.steps[-1]), b.positions(b.steps[-1]))


def test_collect_reports_a_file_a_live_writer_holds_as_running_and_does_not_read_it(tmp_path, client):
    from particledyn.sweep.executor import file_state

    sweep = sweep_file(tmp_path)
    out = tmp_path / "out"
    run_sweep(sweep, out=out, client=client, progress=False, index=0)
    (path,) = sorted((out / "runs").glob("*.h5"))
    assert file_state(str(path), 6) == "finished"
    # another process holds the run file's write lock (a run written outside the sweep, or one
    # whose claim went stale): no claim names it, its file says "finished" from before
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from particledyn.io.locking import WriteLock; lock = WriteLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); sys.stdin.read()",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "locked"
        assert file_state(str(path), 6) == "running"
        collected = collect_sweep(sweep, out=out)
        (live,) = [r for r in collected.rows if r["path"] == str(path)]
        assert live["status"] == "running" and math.isnan(live["final_loss"])  # not read
        assert sweep_main([str(sweep), "--collect", "--out", str(out)]) == 1
    finally:
        writer.stdin.close()
        writer.wait()
    assert file_state(str(path), 6) == "finished"  # the lock gone with its writer
    done = collect_sweep(sweep, out=out)
    (row,) = [r for r in done.rows if r["path"] == str(path)]
    assert row["status"] == "finished" and math.isfinite(row["final_loss"])
