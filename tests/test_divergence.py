"""An infinite or NaN loss is divergence, and so is a finite loss or cloud that explodes (the growth
test): exit 3, the file says so, the verdict and the figures too."""

import numpy as np
import pytest
from run_files import png_is_drawn

from particledyn import DivergenceError, Simulation, open_run
from particledyn.cli import main
from particledyn.divergence import FloatWarnings, GrowthRule
from particledyn.observers import Observer
from particledyn.runner import run_info
from particledyn.summary import summarize_run

# lr = 1e4 on a sigmoid net: the positions grow to ~1e150 and stay finite, the loss overflows at step 26;
# the growth test is off here (it fires at step 1, see test_a_finite_exploding_loss_is_diverged)
DIVERGING = """\
[run]
steps = 40
seed = 3
threads = 1
divergence_growth = 0
[data]
kind = "teacher_student"
d = 1
n = 100
[init]
shape = "genus_region"
n = 100
[schedule]
lr = 1e4
[output]
checkpoint_every = 10
[[observers]]
type = "loss"
[[observers]]
type = "betti"
every = 5
max_dim = 1
"""


@pytest.fixture(scope="module")
def diverged(tmp_path_factory):
    directory = tmp_path_factory.mktemp("diverged")
    scenario = directory / "diverging.toml"
    scenario.write_text(DIVERGING)
    return directory, scenario


def test_an_infinite_loss_ends_the_run_as_diverged(diverged, capsys):
    directory, scenario = diverged
    path = str(directory / "run.h5")
    assert main(["run", str(scenario), "--out", path]) == 3
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err  # no raw RuntimeWarning before the message
    assert lines[0].startswith("error: the run diverged at step 26: the loss became NaN or inf (lr = 10000)")
    assert "numpy warned: overflow encountered in" in lines[0] and "RuntimeWarning" not in captured.err
    # the figures and the verdict of what the run recorded were written after it
    assert "verdict: diverged at step 26 (the loss became NaN or inf)" in captured.out
    assert png_is_drawn(directory / "run_figures" / "cloud.png")
    assert png_is_drawn(directory / "run_figures" / "loss.png")
    with open_run(path) as run:
        assert not run.finished and int(run.steps[-1]) == 26
        steps, loss = run.observable("loss", "loss")
        assert steps[-1] == 26 and np.isinf(loss[-1]) and np.all(np.isfinite(loss[:-1]))
        assert np.all(np.isfinite(run.positions(26)))  # positions alone would not have told
        assert run.checkpoint()["diverged"] == {"step": 26, "quantity": "loss", "count": 0, "lr": 1e4}
    assert run_info(path)["status"] == "diverged"
    assert main(["info", path]) == 0
    assert "diverged at step 26" in capsys.readouterr().out
    assert main(["run", "--resume", "--out", path]) == 1
    assert "cannot resume" in capsys.readouterr().err


def test_plot_and_verdict_of_a_diverged_run(diverged, capsys, tmp_path):
    directory, scenario = diverged
    path = str(directory / "plotted.h5")
    assert main(["run", str(scenario), "--out", path, "--no-plots"]) == 3
    capsys.readouterr()
    summary = summarize_run(path)
    assert summary["diverged"] == {"step": 26, "quantity": "loss"}
    assert summary["verdict"].startswith("diverged at step 26 (the loss became NaN or inf); ")
    # at the start's scale, held (the default), the cloud blown apart is 100 separate points (the
    # authors' per-frame diameter/4 grew with it and saw (2, 0))
    assert "changes: Betti (1, 2) -> (100, 0) at step 5" in summary["verdict"]
    assert "(0.25 x the start's diameter)" in summary["verdict"]
    with _no_warnings():
        assert main(["plot", path, "--out", str(tmp_path / "figs")]) == 0
    out = capsys.readouterr().out
    assert "figures: 4 in" in out and "verdict: diverged at step 26" in out
    for name in ("cloud.png", "betti.png", "diagrams.png", "loss.png"):
        assert png_is_drawn(tmp_path / "figs" / name), name


class _no_warnings:
    """Fail on any warning raised inside the block."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings(record=True)
        self.caught = self._catch.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)
        assert not self.caught, [str(w.message) for w in self.caught]


def test_non_finite_positions_are_marked_in_the_checkpoint(tmp_path):
    from particledyn.kernels import TwoLayerNet
    from particledyn.sinks import MemorySink

    x = np.linspace(0, 1, 20).reshape(10, 2)
    kernel = TwoLayerNet(x[:, :1], x[:, 1], scaling="mean_field")
    sink = MemorySink()
    sim = Simulation(kernel, x, lr=1e300, sink=sink)
    with pytest.raises(DivergenceError, match="became non-finite|NaN or inf") as caught:
        sim.run(5, progress=False)
    assert sink.checkpoint["diverged"]["quantity"] == "positions"
    assert sink.checkpoint["diverged"]["step"] == caught.value.step and not sink.finished


def test_float_warnings_are_held_and_shown_when_nothing_diverged(recwarn):
    with FloatWarnings() as held:
        np.exp(np.array([1000.0]))
        import warnings

        warnings.warn("another warning", UserWarning)
        assert [str(w.message) for w in recwarn] == ["another warning"]
    assert sorted(str(w.message) for w in recwarn) == ["another warning", "overflow encountered in exp"]
    with FloatWarnings() as held:
        np.exp(np.array([1000.0]))
        assert held.take() and held.take() == []
    assert len(recwarn) == 2


def test_a_finite_exploding_loss_is_diverged(diverged, capsys):
    directory, scenario = diverged
    path = str(directory / "grown.h5")
    text = scenario.read_text().replace("divergence_growth = 0\n", "")
    (directory / "grown.toml").write_text(text)
    assert main(["run", str(directory / "grown.toml"), "--out", path, "--no-plots"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: the run diverged at step 1: the loss grew ")
    assert "-fold over the last 1" in err
    with open_run(path) as run:
        steps, loss = run.observable("loss", "loss")
        assert np.all(np.isfinite(loss)) and loss[-1] > 1e8 * loss[0]  # finite: the NaN rule would not see it
        entry = run.checkpoint()["diverged"]
    assert entry["step"] == 1 and entry["quantity"] == "loss" and entry["growth"].startswith("grew ")
    assert run_info(path)["status"] == "diverged"
    summary = summarize_run(path)
    assert summary["diverged"]["growth"] == entry["growth"]
    assert summary["verdict"].startswith("diverged at step 1 (the loss grew ")
    assert main(["run", "--resume", "--out", path]) == 1
    assert "the loss grew" in capsys.readouterr().err


class _Scripted(Observer):
    """A loss observer reporting ``losses[step]`` (the positions do not matter)."""

    name = "loss"
    divergence_keys = ("loss",)

    def __init__(self, losses):
        super().__init__(1)
        self.losses = losses

    def observe(self, info):
        return {"loss": float(self.losses[info.step])}


def _scripted_run(losses, rule=None):
    from particledyn.kernels import TwoLayerNet

    x = np.linspace(0, 1, 20).reshape(10, 2)
    sim = Simulation(
        TwoLayerNet(x[:, :1], x[:, 1], scaling="mean_field"),
        x,
        lr=1e-6,
        observers=[_Scripted(losses)],
        divergence=rule,
    )
    sim.run(len(losses) - 1, progress=False)
    return sim


def test_a_large_but_stable_loss_is_not_diverged():
    t = np.arange(200)
    _scripted_run(1e60 * (1 + 0.5 * np.sin(t)))  # huge from the start, never more than 3x its start
    _scripted_run(np.exp(0.1 * t))  # grows 4e8-fold, but only e-fold every 10 records
    _scripted_run(np.r_[np.full(50, 1.0), np.full(150, 1e-12), np.full(1, 1.0)])  # a dip and back


def test_an_exploding_finite_loss_is_diverged_before_overflow():
    t = np.arange(400)
    losses = np.exp(1.0 * t)  # e-fold per record: overflows at step 710
    with pytest.raises(DivergenceError, match="loss exploded at step 19") as caught:
        _scripted_run(losses)
    assert caught.value.growth.startswith("grew ") and np.isfinite(losses[19])
    # the rule's knobs: a wider threshold fires later, growth = 0 not at all (the loss stays finite)
    with pytest.raises(DivergenceError, match="at step 28"):
        _scripted_run(losses, GrowthRule(threshold=1e12))
    _scripted_run(losses, GrowthRule(0))


def test_the_growth_test_continues_across_a_checkpoint():
    losses = np.exp(1.0 * np.arange(40))
    sim = _scripted_run(losses[:11])  # steps 0..10: e^10 = 2.2e4 x the start, below the threshold
    state = sim.checkpoint()["divergence"]
    assert state["start"] == {"loss": 1.0, "positions": pytest.approx(1.0)}
    assert len(state["history"]["loss"]) == 10
    rule = GrowthRule()
    rule.load_state_dict(state)
    # a fresh rule would take e^11 as its start and never see the threshold crossed by step 19
    assert rule.check({"loss": losses[19]}) is not None
    assert GrowthRule().check({"loss": losses[19]}) is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"growth": 1.0}, "growth=1.0: expected a factor > 1, or 0"),
        ({"window": 0}, "window=0: expected an integer >= 1"),
        ({"threshold": 0.5}, "threshold=0.5: expected a finite factor >= 1"),
    ],
)
def test_growth_rule_refuses_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GrowthRule(**kwargs)
