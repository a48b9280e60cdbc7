"""Mean +- std over seeds of the authors' high-dim measurements (the paper's Figures 5 and 11).

Reads particledyn run files, one per seed or one ensemble file (``run.replicas``) whose replicas
are the seeds, grouped by experiment, and draws, against epochs, the Betti numbers by the authors'
recipe (observer ``betti_authors``: Rips at diameter/4 over Z/11 on every neuron), by ours
(``betti``: the same rule on 400 landmarks over Z/2), the training and test loss, and eta K of
the raw Hessian by the authors' recipe (``sharpness_authors``: 20 power iterations on test
batches) and by Lanczos on the training set (``sharpness_raw``), with the line 2; prints a
Markdown table of the values at the last epoch (with the test accuracy and the atoms left by the
``merges`` observer: 1024 where no neurons merged). ``--common`` draws runs still in progress (or
stopped, to be resumed) up to the last epoch that every seed has recorded.

    python scenarios/seed_curves.py OUT.png "GD lr 0.01=runs/gd_small_s*.h5" "GD lr 0.5=runs/gd_large.h5"
"""

import argparse
import glob
import sys

import numpy as np

from particledyn.data import dataset_spec, training_rows
from particledyn.io import open_run
from particledyn.runner import recorded_scenario
from particledyn.sampling import steps_per_epoch

BETTI = (
    ("betti_authors", "Betti, the authors' recipe (Z/11, all neurons)"),
    ("betti", "Betti, ours (Z/2, 400 landmarks)"),
)


SHARPNESS = (
    ("sharpness_authors", "authors' K (20 power it., test)"),
    ("sharpness_raw", "Lanczos K (train)"),
    ("sharpness", "preconditioned K (Adam; edge 38)"),
)
"""The K observers drawn where a run has them: Adam's files add the preconditioned one (``sharpness``)."""


def read_run(run) -> dict:
    """Epochs and the curves of one run (a file or one replica of an ensemble file)."""
    resolved = recorded_scenario(run)
    per_epoch = steps_per_epoch(
        training_rows(dataset_spec(resolved.data.to_dict())), resolved.optimizer.batch_size
    )
    out = {}
    for name, _ in BETTI:
        steps, betti = run.observable(name, "betti")
        out[name] = np.asarray(betti).reshape(len(steps), -1)
    steps, out["loss"] = run.observable("loss", "loss")
    out["test_loss"] = run.observable("loss", "test_loss")[1]
    out["test_accuracy"] = run.observable("loss", "test_accuracy")[1]
    out["atoms"] = run.observable("merges", "n_atoms")[1]
    for name, _ in SHARPNESS:
        if name in run.observables:
            out[name] = np.asarray(run.observable(name, "eta_K")[1], dtype=float)
    out["epoch"] = np.asarray(steps) / per_epoch
    return out


def read_file(path: str) -> list:
    """The runs of one file: itself, or each replica of an ensemble file."""
    with open_run(path) as run:
        replicas = recorded_scenario(run).run.replicas
        if replicas == 1:
            return [read_run(run)]
        return [read_run(run.replica(r)) for r in range(replicas)]


def _common_prefix(runs: list) -> list:
    """The runs cut to the records every one has (their epochs must agree up to there)."""
    n = min(len(r["epoch"]) for r in runs)
    return [{key: value[:n] for key, value in r.items()} for r in runs]


def read_group(pattern: str, common: bool = False) -> dict:
    """The runs matching ``pattern`` stacked over seeds (they must share their record epochs;
    with ``common``, up to the last one they all have)."""
    paths = sorted(glob.glob(pattern))
    if not paths:
        raise SystemExit(f"{pattern!r}: no run files match")
    runs = [r for p in paths for r in read_file(p)]
    if common:
        runs = _common_prefix(runs)
    if any(not np.array_equal(r["epoch"], runs[0]["epoch"]) for r in runs):
        raise SystemExit(
            f"{pattern!r}: the runs record different epochs; expected one setting, several seeds"
        )
    return {key: np.stack([r[key] for r in runs]) for key in runs[0]} | {"n": len(runs)}


def _band(ax, x, values, label, color, style="-", width=1.2):
    mean, std = values.mean(axis=0), values.std(axis=0)
    ax.plot(x, mean, style, color=color, label=label, lw=width)
    ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.25, lw=0)


def draw(groups: dict, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(groups), 4, figsize=(14, 2.3 * len(groups)), squeeze=False, sharex="row")
    lines = (("C0", "-", 3.0), ("C1", "-", 1.5), ("C2", "--", 1.5))  # b0 wide: b2 = b0 on a sphere
    for row, (label, g) in zip(axes, groups.items()):
        x = g["epoch"][0]
        for ax, (name, title) in zip(row, BETTI):
            for k in range(g[name].shape[2]):
                _band(ax, x, g[name][:, :, k].astype(float), f"b{k}", *lines[k])
            ax.set_title(title, fontsize=8)
            ax.set_ylabel(f"{label}\n({g['n']} seeds)", fontsize=8)
        _band(row[2], x, g["loss"], "train", "C3")
        _band(row[2], x, g["test_loss"], "test", "C4")
        row[2].set_title("cross-entropy loss", fontsize=8)
        for (name, text), color in zip(SHARPNESS, ("C5", "C7", "C9")):
            if name in g:
                _band(row[3], x, g[name], text, color)
        row[3].axhline(2.0, color="k", lw=0.8, ls=":", label="2")
        if "sharpness" in g:
            row[3].axhline(38.0, color="C9", lw=0.8, ls=":", label="38")
        row[3].set_yscale("log")
        row[3].set_title("eta K" if "sharpness" in g else "eta K, raw Hessian", fontsize=8)
        for ax in row:
            ax.legend(fontsize=7, frameon=False)
            ax.tick_params(labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("epoch", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=80)


def table(groups: dict) -> str:
    """Mean +- std over seeds at the last record (the end of the last epoch)."""
    lines = [
        "| experiment | seeds | last epoch | Betti, authors' recipe (start -> end) | Betti, ours | train loss "
        "| test loss | test accuracy | atoms at the end (min) | eta K authors' (start; max; end) "
        "| eta K Lanczos (start; max; end) | eta K preconditioned (start; max; end) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, g in groups.items():

        def betti(name):
            b = g[name].astype(float)
            start = ", ".join(f"{m:.3g}" for m in b[:, 0].mean(axis=0))
            end = ", ".join(
                f"{m:.3g} +- {s:.2g}" for m, s in zip(b[:, -1].mean(axis=0), b[:, -1].std(axis=0))
            )
            return f"({start}) -> ({end})"

        def sharp(name):
            if name not in g:
                return "-"
            k = g[name]
            parts = (k[:, 0], k.max(axis=1), k[:, -1])
            return "; ".join(f"{p.mean():.3g} +- {p.std():.2g}" for p in parts)

        loss = g["loss"][:, -1]
        test = g["test_loss"][:, -1]
        accuracy = 100 * g["test_accuracy"][:, -1]
        lines.append(
            f"| {label} | {g['n']} | {g['epoch'][0, -1]:g} | {betti('betti_authors')} | {betti('betti')} | "
            f"{loss.mean():.3g} +- {loss.std():.2g} | {test.mean():.3g} +- {test.std():.2g} "
            f"| {accuracy.mean():.3g} +- {accuracy.std():.2g} % | {int(g['atoms'][:, -1].min())} "
            f"| {sharp('sharpness_authors')} | {sharp('sharpness_raw')} | {sharp('sharpness')} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="figure (PNG)")
    parser.add_argument("groups", nargs="+", metavar="LABEL=GLOB", help="an experiment and its run files")
    parser.add_argument(
        "--common", action="store_true", help="cut the seeds to the epochs they all have recorded"
    )
    args = parser.parse_args(argv)
    groups = {}
    for item in args.groups:
        label, sep, pattern = item.partition("=")
        if not sep:
            raise SystemExit(f"{item!r}: expected LABEL=GLOB")
        groups[label] = read_group(pattern, args.common)
    draw(groups, args.out)
    print(table(groups))
    return 0


if __name__ == "__main__":
    sys.exit(main())
