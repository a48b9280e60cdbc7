"""The phase-transition campaign: onset brackets, critical ratios and their error bars, the
persistent-Betti event, multi-event bisection, and a tiny real sweep analysed end to end
(including events with no onset in range, which must be said, not invented)."""

import math
import os

import numpy as np
import pytest

from particledyn.sweep.campaign import aggregate, onset_bracket, plot_campaign, point_rows, start_K

BASE = os.path.abspath(
    os.path.join(
        os.path.dirname(__file__), "..", "scenarios", "sweeps", "phase_transition_campaign_base.toml"
    )
)


# ---------------------------------------------------------------- brackets
def test_the_onset_is_bracketed_between_the_last_rate_without_and_the_first_with():
    b = onset_bracket({0.25: "none", 0.5: "none", 1.0: "event", 2.0: "event", 4.0: "event"})
    assert (b["status"], b["lo"], b["hi"], b["non_monotone"], b["runs"]) == ("bracketed", 0.5, 1.0, 0, 5)


def test_no_onset_in_range_is_said_and_no_number_invented():
    b = onset_bracket({0.25: "none", 1.0: "none", 16.0: "none"})
    assert b["status"] == "none" and b["lo"] == 16.0 and math.isnan(b["hi"])
    row = _row(b, K0=2.0)
    assert math.isnan(row["eta_c"]) and all(math.isnan(row[f"eta_c_{s}"]) for s in ("lambda_max", "pairwise"))
    (entry,) = aggregate([row, dict(row, seed=1)])
    assert entry["none"] == 2 and entry["bracketed"] == 0 and entry["none_up_to"] == 16.0
    assert math.isnan(entry["mean_lambda_max"]) and entry["predicts"] == ""


def test_the_markdown_table_names_why_a_group_has_no_number():
    from particledyn.sweep.campaign import markdown_table

    none = _row(onset_bracket({0.25: "none", 16.0: "none"}), K0=2.0)
    diverged = dict(_row(onset_bracket({0.25: "none", 4.0: "diverged"}), K0=2.0), n=1000)
    found = dict(_row(onset_bracket({1.0: "none", 4.0: "event"}), K0=2.0), n=10)
    text = markdown_table(aggregate([none, diverged, found]))
    lines = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()[2:]}
    assert "1 none up to 16" in lines["100"] and "2 +-" not in lines["100"]
    assert "1 diverge first (at 4)" in lines["1000"]
    # eta_c = sqrt(1 * 4) / K0 = 1: eta_c K = 2, 0.5, 4 (a tie of 2 and 0.5: the first K named)
    assert "| 2 | 0.5 | 4 | lambda_max |" in lines["10"]


def test_the_table_by_n_puts_each_n_in_a_column_with_the_fit_and_why_a_cell_has_no_number():
    from particledyn.sweep.campaign import markdown_by_n, scaling_fit

    rows = [_seeded(n, 2.0 * n**-0.5 * (1 + 0.01 * s), s) for n in (100, 10000) for s in range(3)]
    rows += [dict(_seeded(100000, math.nan, s), status="diverged", hi_factor=2.83) for s in range(3)]
    rows.append(dict(_seeded(10000, math.nan, 3), status="at_lo", lo_factor=0.0, hi_factor=0.0156))
    text = markdown_by_n(aggregate(rows), scaling_fit(rows))
    head, _, line = text.splitlines()
    assert head.startswith("| scaling | optimizer | event | N = 100 | N = 10^4 | N = 10^5 | b (lambda_max)")
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[3] == "0.202 +- 0.002 [3/3]" and cells[4] == "0.0202 +- 0.0002 [3/4; 1 below]"
    assert cells[5] == "3 div. 2.83"  # no bracketed seed: why, with the rate
    assert cells[6].startswith("-0.50 +- 0.00") and cells[6].endswith("*")  # a trend past 2 sigma
    # a flat onset is no trend: no star
    flat = [_seeded(n, 0.5 * (1 + 0.3 * (-1) ** s), s) for n in (100, 10000) for s in range(4)]
    (line,) = markdown_by_n(aggregate(flat), scaling_fit(flat)).splitlines()[2:]
    assert "*" not in line


@pytest.mark.parametrize(
    "outcomes, status, lo, hi, non_monotone",
    [
        ({0.25: "event", 1.0: "event"}, "at_lo", math.nan, 0.25, 0),
        ({0.25: "none", 1.0: "diverged", 4.0: "diverged"}, "diverged", 0.25, 1.0, 0),
        ({0.25: "none", 1.0: "event", 2.0: "none", 4.0: "event"}, "bracketed", 0.25, 1.0, 1),
        ({0.25: "failed", 1.0: "none", 2.0: "event"}, "bracketed", 1.0, 2.0, 0),
        ({0.25: "failed"}, "failed", math.nan, math.nan, 0),
    ],
)
def test_brackets_at_the_edges_of_the_range(outcomes, status, lo, hi, non_monotone):
    b = onset_bracket(outcomes)
    assert b["status"] == status and b["non_monotone"] == non_monotone
    np.testing.assert_equal([b["lo"], b["hi"]], [lo, hi])


def _row(bracket, K0, seed=0, K=(None, 0.5, 4.0), n=100):
    eta_c = math.sqrt(bracket["lo"] * bracket["hi"]) / K0 if bracket["status"] == "bracketed" else math.nan
    K = dict(zip(("lambda_max", "pairwise", "apriori"), (K0, K[1], K[2])))
    return {
        "sweep": "s",
        "seed": seed,
        "n": n,
        "scaling": "mean_field",
        "optimizer": "gd",
        "event": "merge",
        "status": bracket["status"],
        "lo_factor": bracket["lo"],
        "hi_factor": bracket["hi"],
        "non_monotone": bracket["non_monotone"],
        "runs": bracket["runs"],
        **{f"K_{s}": v for s, v in K.items()},
        "eta_c": eta_c,
        **{f"eta_c_{s}": eta_c * v for s, v in K.items()},
    }


def test_the_critical_ratio_is_the_geometric_midpoint_and_its_error_bar_the_spread_over_seeds():
    rows = [
        _row(onset_bracket({1.0: "none", 4.0: "event"}), K0=2.0, seed=0),  # midpoint 2.0
        _row(onset_bracket({2.0: "none", 8.0: "event"}), K0=2.0, seed=1),  # midpoint 4.0
        _row(onset_bracket({0.5: "none", 16.0: "none"}), K0=2.0, seed=2),
    ]  # none in range
    (entry,) = aggregate(rows)
    assert entry["seeds"] == 3 and entry["bracketed"] == 2 and entry["none"] == 1
    assert entry["mean_lambda_max"] == pytest.approx(3.0)
    assert entry["std_lambda_max"] == pytest.approx(math.sqrt(2))
    # eta_c = 1.0 and 2.0; read against K = 0.5 and 4.0
    assert entry["mean_pairwise"] == pytest.approx(0.75) and entry["mean_apriori"] == pytest.approx(6.0)
    assert entry["predicts"] == "pairwise"  # |log10 0.75| < |log10 3| < |log10 6|
    assert entry["bracket_log10_halfwidth"] == pytest.approx(0.5 * math.log10(4.0))


def test_a_finite_blow_up_counts_as_divergence_and_hides_what_came_after():
    from particledyn.sweep.onset import blowup

    steps = np.array([0, 10, 20, 30])
    assert blowup((steps, np.array([1.0, 0.5, 0.2, 0.1]))) == (None, None)
    assert blowup((steps, np.array([1.0, 5.0, 2e3, 1e9]))) == (20, 10)
    assert blowup((steps, np.array([1.0, np.nan, 1.0, 1.0]))) == (10, 0)
    assert blowup((steps, np.array([1.0, 999.0, 0.1, 0.1]))) == (None, None)
    assert blowup(None) == (None, None)


# ---------------------------------------------------------------- Betti windows
def test_a_change_across_one_narrow_scale_window_is_not_persistent():
    from particledyn.summary_kinds import betti_window

    before = np.array([[0, 0.0, np.inf], [1, 0.09, 0.5]])  # a loop alive from 0.09 to 0.5
    narrow = np.array([[0, 0.0, np.inf], [1, 0.11, 0.5]])  # born a little later: differs on [0.09, 0.11)
    wide = np.array([[0, 0.0, np.inf], [1, 0.3, 0.5]])  # differs on [0.09, 0.3)
    assert betti_window(before, narrow, 0.1, 0.5, 1)["kind"] == "geometric"
    assert betti_window(before, wide, 0.1, 0.5, 1)["kind"] == "persistent"


# ---------------------------------------------------------------- bisection of several events
def test_a_bisection_bracket_moves_only_on_rates_inside_it():
    from particledyn.sweep.bisect import BisectPoint

    state = BisectPoint((0, 32), 1.0, 0.5, 64.0)
    for factor, event in ((0.5, False), (64.0, True), (8.0, True), (2.0, False)):
        state.update(factor, event, (0.5, 64.0))
    assert (state.lo, state.hi) == (2.0, 8.0)
    state.update(32.0, False, (0.5, 64.0))  # another bracket's midpoint, outside this one
    state.update(1.0, True, (0.5, 64.0))
    assert (state.lo, state.hi) == (2.0, 8.0) and state.tried[32.0] is False
    state.diverged[8.0] = True
    assert state.onset == "diverged"


def test_the_sweep_rejects_a_bad_event_list(tmp_path):
    from particledyn.sweep import SweepError, parse_sweep

    text = f'[sweep]\nbase = "{BASE}"\nsteps = 2\n[grid]\nn = [16]\n[sharpness]\nevery = 0\n[bisect]\n'
    for bad in ('["merge", "merge"]', '["merge", "tears"]', "[]"):
        with pytest.raises(SweepError, match="bisect.event"):
            parse_sweep(text + f"event = {bad}\n", "s.toml", tmp_path)
    spec = parse_sweep(text + 'event = ["exact_merge", "persistent_betti"]\n', "s.toml", tmp_path)
    assert spec.bisect.events == ("exact_merge", "persistent_betti")


# ---------------------------------------------------------------- a tiny real sweep
@pytest.fixture(scope="module")
def client():
    import logging

    import distributed

    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None, silence_logs=logging.ERROR
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


TINY = f"""
[sweep]
name = "tiny"
base = "{BASE}"
steps = 10
plot = false
[sweep.set]
"data.n" = 60
[grid]
seed = [0, 1]
n = [24]
[sharpness]
every = 0
"""


def test_a_tiny_bisection_and_its_analysis_agree_and_say_where_there_is_no_onset(tmp_path, client):
    from particledyn.sweep import run_sweep
    from particledyn.sweep.grid import load_sweep

    path = tmp_path / "tiny.toml"
    path.write_text(
        TINY + '[bisect]\nevent = ["exact_merge", "betti_change"]\nlo = 0.25\nhi = 64.0\niterations = 2\n'
    )
    result = run_sweep(path, out=tmp_path / "out", client=client, progress=False)
    assert len(result.bisection) == 4  # 2 points x 2 events
    spec = load_sweep(path)
    rows = point_rows(spec, tmp_path / "out", events=("exact_merge", "betti_change"))
    for bracket in result.bisection:  # the bisection's brackets and the analysis' agree
        (mine,) = [r for r in rows if (r["seed"], r["event"]) == (bracket["seed"], bracket["event"])]
        expected = {"bracketed": "bracketed", "event_at_lo": "at_lo", "no_event_at_hi": "none"}[
            bracket["status"]
        ]
        if bracket["onset"] == "diverged":
            expected = "diverged"
        assert mine["status"] == expected
        if expected in ("bracketed", "diverged"):
            assert (mine["lo_factor"], mine["hi_factor"]) == (bracket["lo_factor"], bracket["hi_factor"])
    exact = [r for r in rows if r["event"] == "exact_merge"]
    # pairs equal at float precision: the smooth net makes none before its runs blow up at 64 eta*
    # (loss 1e3 x the start's: the float tolerance, 8 ulps of the largest coordinate, then calls
    # most pairs equal), so there is no onset to report and none is invented
    assert [r["status"] for r in exact] == ["diverged", "diverged"]
    assert all(math.isnan(r["eta_c"]) and r["hi_factor"] <= 64.0 for r in exact)
    table = aggregate(rows)
    (entry,) = [e for e in table if e["event"] == "exact_merge"]
    assert entry["diverged"] == 2 and math.isnan(entry["mean_lambda_max"]) and entry["predicts"] == ""
    png = plot_campaign(rows, tmp_path / "c.png", events=("exact_merge", "betti_change"))
    assert png.stat().st_size > 10_000


def test_the_K_at_the_start_orders_as_the_theory_says(tmp_path):
    from particledyn.sweep.grid import grid_points, load_sweep, measure_K0, run_scenario

    path = tmp_path / "tiny.toml"
    path.write_text(TINY.replace("[grid]\n", "[grid]\nlr_factor = [1.0]\n"))
    spec = load_sweep(path)
    resolved = run_scenario(spec, grid_points(spec)[0], 1.0)
    K = start_K(resolved, measure_K0(resolved))
    # the pairwise K is a lower bound on the Lipschitz constant of the field, the a-priori bound an
    # upper one: a bound below the measured pairs would be a wrong certificate
    assert 0 < K["pairwise"] <= K["apriori"] and K["lambda_max"] > 0


# ---------------------------------------------------------------- scaling with N
def _seeded(n, value, seed, status="bracketed", width=1.001):
    row = _row(onset_bracket({1.0: "none", width: "event"}), K0=1.0, seed=seed, n=n)
    return dict(
        row, status=status, eta_c=value, eta_c_lambda_max=value, eta_c_pairwise=value, eta_c_apriori=value
    )


def test_the_scaling_exponent_is_fitted_with_its_error_and_a_flat_onset_is_said_to_have_no_trend():
    from particledyn.sweep.campaign import scaling_fit, scaling_markdown

    rng = np.random.default_rng(0)
    ns = (100, 1000, 10000)
    falling = [_seeded(n, 2.0 * n**-0.5 * math.exp(rng.normal(0, 0.1)), s) for n in ns for s in range(5)]
    (fit,) = [f for f in scaling_fit(falling) if f["K"] == "lambda_max"]
    assert fit["exponent"] == pytest.approx(-0.5, abs=0.06) and 0 < fit["stderr"] < 0.05
    assert fit["verdict"].startswith("N^(-0.5") and fit["seeds_per_n"] == "100:5; 1000:5; 10000:5"
    flat = [_seeded(n, math.exp(rng.normal(0, 0.5)), s) for n in ns for s in range(5)]
    (fit,) = [f for f in scaling_fit(flat) if f["K"] == "lambda_max"]
    assert abs(fit["exponent"]) < 2 * fit["stderr"] and fit["verdict"] == "no trend within error"
    # seeds that share one bracket per N have no residual: the bracket's width is the error
    shared = [_seeded(n, 2.0 * n**-0.5, s, width=4.0) for n in ns for s in range(5)]
    (fit,) = [f for f in scaling_fit(shared) if f["K"] == "lambda_max"]
    assert fit["exponent"] == pytest.approx(-0.5)
    assert fit["stderr"] == pytest.approx(0.5 * math.log10(4.0) / math.sqrt(3) / math.sqrt(10), rel=1e-6)
    # censored seeds are left out and said; one N bracketed is no fit, and no number is invented
    one_n = [_seeded(100, 1.0, s) for s in range(4)] + [_seeded(1000, math.nan, 0, status="none")]
    (fit,) = [f for f in scaling_fit(one_n) if f["K"] == "lambda_max"]
    assert (
        math.isnan(fit["exponent"]) and fit["verdict"].startswith("no fit") and fit["seeds_per_n"] == "100:4"
    )
    assert "no fit" in scaling_markdown(scaling_fit(one_n))


# ---------------------------------------------------------------- the base scenario
def test_the_base_scenario_locates_a_blow_up_to_the_step(tmp_path):
    from particledyn.runner import start_run
    from particledyn.scenario import load_scenario
    from particledyn.sweep.onset import run_events

    scenario = load_scenario(
        BASE,
        {"run.steps": 14, "init.n": 24, "data.n": 60, "schedule.lr": 300.0, "kernel.scaling": "standard"},
    )
    path = tmp_path / "blow.h5"
    try:
        start_run(scenario, out=str(path), progress=False)
    except Exception:  # a NaN divergence stops the run; the file keeps what was recorded
        pass
    events = run_events(path)
    # the loss is recorded every step, so the blow-up is the step it happens at, not up to 10 late
    assert events["diverged"] is not None and 1 <= events["diverged"] <= 14
    from particledyn.io import open_run
    from particledyn.summary import train_loss_series

    with open_run(path) as run:
        steps, _ = train_loss_series(run)
    assert np.array_equal(np.diff(steps), np.ones(len(steps) - 1))


# ---------------------------------------------------------------- the command
@pytest.fixture()
def scheduler():
    import logging

    import distributed

    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None, silence_logs=logging.ERROR
    )
    yield cluster.scheduler_address
    cluster.close()


def test_particledyn_campaign_runs_resumes_and_refuses_to_replace_another_campaign(
    tmp_path, scheduler, capsys
):
    import h5py

    from particledyn.cli import main

    bisect = '[bisect]\nevent = ["exact_merge", "merge"]\nlo = 0.25\nhi = 64.0\niterations = 1\n'
    first, second = tmp_path / "a.toml", tmp_path / "b.toml"
    first.write_text(TINY + bisect)
    second.write_text(
        TINY.replace('name = "tiny"', 'name = "other"').replace("seed = [0, 1]", "seed = [2]") + bisect
    )
    out = tmp_path / "out"
    argv = ["campaign", str(first), "--out", str(out), "--address", scheduler]
    assert main(argv) == 0
    for name in (
        "campaign_table.csv",
        "campaign_scaling.csv",
        "campaign_points.csv",
        "campaign.h5",
        "campaign.png",
    ):
        assert (out / name).is_file(), name
    runs = sorted((out / "runs").glob("*.h5"))  # one sweep: its runs in --out itself
    assert runs
    stamps = [p.stat().st_mtime_ns for p in runs]
    capsys.readouterr()
    assert main(argv) == 0  # a rerun resumes: nothing is run again
    assert [p.stat().st_mtime_ns for p in runs] == stamps
    with h5py.File(out / "campaign.h5") as f:
        points = len(f["points/seed"])
    assert points == 4  # 2 seeds x the 2 events bisected
    capsys.readouterr()
    # another sweep into the same folder: refused in one line, nothing run or lost
    assert main(["campaign", str(second), "--out", str(out), "--address", scheduler]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err and "campaign.h5" in err
    assert not (out / "other").exists() and sorted((out / "runs").glob("*.h5")) == runs
    assert main(["campaign", str(second), "--out", str(out), "--address", scheduler, "--overwrite"]) == 0
    with h5py.File(out / "campaign.h5") as f:
        assert len(f["points/seed"]) == 2 and str(second) in f.attrs["sweeps"]


def test_particledyn_campaign_puts_several_sweeps_each_in_its_own_folder_and_rejects_bad_options(
    tmp_path, capsys
):
    from particledyn.cli import main

    path = tmp_path / "a.toml"
    path.write_text(TINY + '[bisect]\nevent = ["merge"]\nlo = 0.25\nhi = 64.0\niterations = 1\n')
    for bad, word in (
        (["--workers", "0"], "--workers=0"),
        (["--limit", "-1"], "--limit=-1"),
    ):
        assert main(["campaign", str(path), *bad]) == 2
        assert word in capsys.readouterr().err
    # two sweeps of one name cannot share --out (their runs would mix)
    assert main(["campaign", str(path), str(path), "--out", str(tmp_path / "o")]) == 2
    assert "sweep.name='tiny'" in capsys.readouterr().err
    broken = tmp_path / "broken.toml"
    broken.write_text("[sweep]\nbase = 3\n")
    assert main(["campaign", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- the analysis on the workers
@pytest.fixture(scope="module")
def tiny_bisection(tmp_path_factory, client):
    from particledyn.sweep import run_sweep

    folder = tmp_path_factory.mktemp("tiny_bisection")
    path = folder / "tiny.toml"
    path.write_text(
        TINY.replace("seed = [0, 1]", "seed = [0, 1, 2]").replace(
            "[grid]\n", '[grid]\n"kernel.scaling" = ["mean_field", "standard"]\n'
        )
        + '[bisect]\nevent = ["exact_merge", "merge", "persistent_betti"]\nlo = 0.25\nhi = 64.0\niterations = 1\n'
    )
    run_sweep(path, out=folder / "out", client=client, progress=False)
    return path, folder / "out"


def _same(a: list[dict], b: list[dict]) -> bool:
    """Equal row for row and bit for bit (NaN equal to NaN)."""
    if len(a) != len(b) or any(list(x) != list(y) for x, y in zip(a, b)):
        return False
    for x, y in zip(a, b):
        for k in x:
            u, v = x[k], y[k]
            if isinstance(u, float) and isinstance(v, float):
                if not (np.float64(u).tobytes() == np.float64(v).tobytes()):
                    return False
            elif u != v or type(u) is not type(v):
                return False
    return True


def test_the_analysis_on_the_workers_is_the_serial_one_bit_for_bit(tiny_bisection, tmp_path):
    import logging

    import distributed

    from particledyn.sweep.campaign import markdown_table, write_campaign
    from particledyn.sweep.grid import load_sweep

    path, out = tiny_bisection
    spec = load_sweep(path)
    serial = point_rows(spec, out, events=("exact_merge", "merge", "persistent_betti"))
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        cache: dict = {}
        with distributed.get_task_stream(client=c) as stream:
            on_workers = point_rows(
                spec, out, events=("exact_merge", "merge", "persistent_betti"), client=c, K_cache=cache
            )
    analysed = [t for t in stream.data if "particledyn-analyse" in str(t["key"])]
    assert len(analysed) == 6  # one task per grid point, on the workers
    assert len(serial) == 6 * 3 and _same(serial, on_workers)
    assert len(cache) == 6 and all(set(K) == {"lambda_max", "pairwise", "apriori"} for K in cache.values())
    assert markdown_table(aggregate(serial)) == markdown_table(aggregate(on_workers))
    a = write_campaign(serial, aggregate(serial), tmp_path / "serial")
    b = write_campaign(on_workers, aggregate(on_workers), tmp_path / "workers")
    for name in ("points", "table", "scaling"):
        assert a[name].read_bytes() == b[name].read_bytes(), name
    # the comparison can fail: one K changed in its last bit is told apart
    bumped = [dict(r) for r in on_workers]
    bumped[0]["K_pairwise"] = float(np.nextafter(bumped[0]["K_pairwise"], np.inf))
    assert not _same(serial, bumped)
    # a K known already is not measured again (here: a made-up one, to see that it is used)
    fake = {k: dict(v, pairwise=1.0) for k, v in cache.items()}
    rows = point_rows(spec, out, events=("merge",), K_cache=fake)
    assert all(r["K_pairwise"] == 1.0 for r in rows)


def test_earlier_points_join_a_campaign_once_and_a_point_twice_is_refused(tiny_bisection, tmp_path, capsys):
    import csv

    from particledyn.cli import main
    from particledyn.sweep.campaign import read_points

    path, out = tiny_bisection
    first = tmp_path / "first"
    assert (
        main(
            [
                "campaign",
                str(path),
                "--out",
                str(out),
                "--analyse-only",
                "--table-out",
                str(first),
                "--workers",
                "1",
            ]
        )
        == 0
    )
    assert not (out / "campaign.h5").exists()  # the table went to --table-out, beside no runs
    stored = read_points(first / "campaign_points.csv")
    assert len(stored) == 18 and stored[0]["sweep"] == "tiny" and isinstance(stored[0]["seed"], int)
    capsys.readouterr()
    # the same points again, from the runs and from the file: refused in one line before anything runs
    again = ["campaign", str(path), "--out", str(out), "--analyse-only", "--table-out", str(tmp_path / "b")]
    assert main(again + ["--with-points", str(first / "campaign_points.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is in both 'tiny' and 'tiny'" in err and "--skip-sweep" in err
    assert not (tmp_path / "b").exists()
    # another sweep's points (renamed, other seeds) join the table: 3 + 3 seeds per group
    renamed = tmp_path / "renamed.csv"
    with open(first / "campaign_points.csv", newline="") as src, open(renamed, "w", newline="") as dst:
        rows = list(csv.DictReader(src))
        writer = csv.DictWriter(dst, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([dict(r, sweep="old", seed=str(int(r["seed"]) + 10)) for r in rows])
    assert main(again + ["--with-points", str(renamed)]) == 0
    table = read_points(tmp_path / "b" / "campaign_points.csv")
    assert len(table) == 36 and sorted({r["sweep"] for r in table}) == ["old", "tiny"]
    with open(tmp_path / "b" / "campaign_table.csv", newline="") as handle:
        assert {int(r["seeds"]) for r in csv.DictReader(handle)} == {6}
    # left out by --skip-sweep: the runs' points only
    assert main(again + ["--with-points", str(renamed), "--skip-sweep", "old", "--overwrite"]) == 0
    assert len(read_points(tmp_path / "b" / "campaign_points.csv")) == 18
    capsys.readouterr()
    for bad, word in (
        (["--with-points", str(renamed), "--skip-sweep", "nope"], "--skip-sweep nope"),
        (["--with-points", str(tmp_path / "missing.csv")], "missing.csv"),
        (["--with-points", str(path)], "expected a campaign_points.csv"),
    ):
        assert main(again + bad + ["--overwrite"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and err.count("\n") == 1 and word in err, err


def test_a_campaign_is_analysed_from_points_files_alone_when_no_run_file_is_left(
    tiny_bisection, tmp_path, capsys
):
    import csv

    from particledyn.cli import main

    path, out = tiny_bisection
    first = tmp_path / "first"
    argv = ["campaign", str(path), "--out", str(out), "--analyse-only", "--table-out", str(first)]
    assert main(argv + ["--workers", "1"]) == 0
    # the run files gone: the points file alone gives the same points, table and scaling fits
    points = first / "campaign_points.csv"
    alone = tmp_path / "alone"
    assert main(["campaign", "--with-points", str(points), "--table-out", str(alone)]) == 0
    for name in ("campaign_points.csv", "campaign_scaling.csv"):
        assert (alone / name).read_bytes() == (first / name).read_bytes(), name
    with (
        open(first / "campaign_table.csv", newline="") as a,
        open(alone / "campaign_table.csv", newline="") as b,
    ):
        rows_a, rows_b = list(csv.DictReader(a)), list(csv.DictReader(b))
    assert len(rows_a) == len(rows_b) == 6
    for x, y in zip(rows_a, rows_b):  # the means of 6-digit values: equal to 5 digits
        for k in x:
            try:
                assert math.isclose(float(x[k]), float(y[k]), rel_tol=1e-5) or x[k] == y[k], k
            except ValueError:
                assert x[k] == y[k], k
    assert (alone / "campaign.png").is_file() and (alone / "campaign_table.md").is_file()
    capsys.readouterr()
    for bad, word in (
        (["campaign"], "expected a sweep file or --with-points"),
        (["campaign", "--with-points", str(points)], "expected --table-out"),
    ):
        assert main(bad) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and err.count("\n") == 1 and word in err, err


def test_the_table_prints_no_rounding_residue_as_a_spread():
    """Seeds bracketed alike have one eta_c: their std is the mean's rounding (2.8e-17), shown 0."""
    from particledyn.sweep.campaign import _pm

    values = np.array([0.21022410381342865, np.nextafter(0.21022410381342865, 1.0)])
    assert 0 < values.std(ddof=1) < 1e-15
    assert _pm(values.mean(), values.std(ddof=1)) == "0.21 +- 0"
    assert _pm(0.863, 0.57) == "0.863 +- 0.57"
    assert _pm(0.5, math.nan) == "0.5"


def test_the_figure_ticks_the_measured_N_only(tmp_path, monkeypatch):
    """The optimizers are drawn side by side about each N; at one N a log axis would tick those
    offsets as if they were other N (8 x 10^4, 9 x 10^4): only the measured N are ticked."""
    from matplotlib.figure import Figure

    drawn = []
    real = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: drawn.append(self) or real(self, *a, **k))
    rows = [
        {
            "n": 100000,
            "seed": s,
            "scaling": "mean_field",
            "optimizer": o,
            "event": "merge",
            "status": "bracketed",
            "lo_factor": 0.1,
            "hi_factor": 0.5,
            "eta_c_lambda_max": 0.2 + 0.01 * s,
            "eta_c_pairwise": 0.05,
            "eta_c_apriori": 0.5,
        }
        for s in range(3)
        for o in ("gd", "momentum", "adam")
    ]
    plot_campaign(rows, tmp_path / "c.png", events=("merge",))
    for ax in drawn[0].axes:
        assert list(ax.get_xticks()) == [100000] and [t.get_text() for t in ax.get_xticklabels()] == ["10^5"]
        assert not len(ax.xaxis.get_minorticklocs())
