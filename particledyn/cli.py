"""The ``particledyn`` command: run scenarios, resume runs, inspect run files.

Exit status: 0 done, 1 I/O or resume error, 2 bad scenario or usage (nothing
written), 3 the run diverged (the file keeps its committed frames), 130
interrupted (the file holds a checkpoint to resume from).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

DESCRIPTION = """\
Simulate permutation-equivariant particle dynamics: the neurons of a network are
particles x_i in R^D moved by x_i <- x_i + eta * U_i(X). A run follows a TOML
scenario and streams positions, diagnostics and checkpoints to an HDF5 (H5MD) file
that a notebook can read while the run writes it (particledyn.open_run)."""

EPILOG = """\
examples:
  particledyn run                          run the built-in default scenario (default.h5)
  particledyn run my.toml --out a.h5       run a scenario file
  particledyn run my.toml --steps 5000 --resume
                                           continue a killed or finished run to 5000 steps
  particledyn run my.toml --set schedule.lr=0.05 --set run.seed=3 --out lr05.h5
                                           vary any scenario key (checked as in the file)
  particledyn validate my.toml             check a scenario without running it
  particledyn scenarios list               the paper's scenarios; copy one with: scenarios copy NAME
  particledyn info a.h5                    what a run file holds, how far it got
  particledyn plot a.h5                    figures (a_figures/*.png; --format pdf|svg) and the verdict
  particledyn sweep grid.toml              a grid of runs (lr, seeds, N) on Dask, with the phase diagram
  particledyn campaign sweep.toml [...]    the phase-transition sweeps, critical-rate table and figure
  particledyn width my.toml --sizes 100 1000
                                           infinite-width convergence study of a mean-field scenario
  particledyn keys                         every scenario key, its type, default and meaning
  particledyn show-default > my.toml       a scenario to start from
  source <(particledyn completion bash)    tab completion of commands and flags in bash

exit status: 0 done, 1 I/O or resume error, 2 bad scenario or usage (nothing
written), 3 diverged, 130 interrupted (resume with --resume)."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors in the style of the scenario errors."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"error: {message}\n")


FIGURE_FORMATS = ("png", "pdf", "svg")


def _figure_options(parser) -> None:
    parser.add_argument(
        "--format",
        choices=FIGURE_FORMATS,
        default=None,
        dest="figure_format",
        help="file format of the figures (default: png)",
    )
    parser.add_argument(
        "--dpi",
        type=_positive_int,
        default=None,
        metavar="N",
        help="resolution of raster figures, dots per inch (default: 200)",
    )
    parser.add_argument(
        "--movie",
        choices=("gif", "mp4"),
        default=None,
        help="also a movie of the cloud over training (mp4 needs ffmpeg)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer > 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``particledyn`` command."""
    from ._version import __version__

    parser = _Parser(
        prog="particledyn",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"particledyn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = commands.add_parser(
        "run",
        help="run a scenario (the default one when none is given), or resume a run",
        description="Run a TOML scenario, writing an H5MD file; with --resume, continue the run in\n"
        "an existing file from its last checkpoint (bit-identical to an uninterrupted run).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="--steps is the total length of the run: a resumed run continues until it.\n"
        "Without a scenario, --resume uses the one stored in the file.",
    )
    run.add_argument(
        "scenario",
        nargs="?",
        metavar="SCENARIO.toml",
        help="scenario file (default: the built-in default scenario)",
    )
    run.add_argument("--default", action="store_true", help="run the built-in default scenario")
    run.add_argument("--out", metavar="PATH", help="output file (default: the scenario's output.path)")
    run.add_argument("--steps", type=int, metavar="N", help="total number of steps (overrides run.steps)")
    run.add_argument("--threads", type=int, metavar="N", help="numba threads (overrides run.threads)")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="set",
        help="set a scenario key, such as schedule.lr=0.05 (repeatable; the value is read "
        "as TOML, else as a string; checked as in the file; recorded in the run file)",
    )
    run.add_argument(
        "--resume", action="store_true", help="continue the run in the output file from its last checkpoint"
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output file (never one a live run is writing)",
    )
    run.add_argument(
        "--force",
        action="store_true",
        help="with --resume: resume although the writer PID stamped in the file is alive "
        "where no write lock can tell (an older particledyn's file, a filesystem without "
        "record locks); a file whose write lock a live run holds is never resumed",
    )
    run.add_argument(
        "--mpi",
        action="store_true",
        help="under mpiexec -n R: shard the particles over the R ranks (kernels in DeepSets form; "
        "rank 0 writes the file; see docs/mpi.md)",
    )
    run.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: on a terminal only)",
    )
    run.add_argument(
        "--plot",
        action=argparse.BooleanOptionalAction,
        default=True,
        dest="plots",
        help="write figures and the summary verdict after the run (default: on)",
    )
    # the old spelling, deprecated: still accepted, hidden from --help and completion
    run.add_argument(
        "--plots",
        action=argparse.BooleanOptionalAction,
        dest="plots",
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )
    _figure_options(run)

    plot = commands.add_parser(
        "plot",
        help="draw a run's figures and write its summary verdict",
        description="Write PNG figures (neuron cloud before/after, Betti numbers, "
        "eta*K and 2/eta, merges, loss) to RUN_figures/ and the verdict "
        "to RUN_summary.json, for a finished, running or killed run.",
    )
    plot.add_argument("path", metavar="RUN.h5")
    plot.add_argument(
        "--out", metavar="DIR", help="folder of the figures (default: RUN_figures/ beside the file)"
    )
    _figure_options(plot)

    info = commands.add_parser(
        "info",
        help="show what a run file holds and how far its run got",
        description="Show a run file's status (finished, running, stopped, "
        "diverged), frames, checkpoint, observables and settings.",
    )
    info.add_argument("path", metavar="RUN.h5")
    info.add_argument("--json", action="store_true", help="print the facts as one JSON object")

    validate = commands.add_parser(
        "validate",
        help="check a scenario file without running it",
        description="Check a scenario as `run` does (every key, type, range and cross-check) and print "
        "a one-line summary; exit 0 when valid, else the one-line error and exit 2.",
    )
    validate.add_argument("scenario", metavar="SCENARIO.toml")
    validate.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="set",
        help="check with this key set, as run --set does (repeatable)",
    )

    scenarios = commands.add_parser(
        "scenarios",
        help="list or copy the paper's packaged scenarios",
        description="The scenarios of the paper's experiments, shipped with the package.",
    )
    scenario_commands = scenarios.add_subparsers(
        dest="scenarios_command", metavar="ACTION", parser_class=_Parser, required=True
    )
    scenario_commands.add_parser(
        "list",
        help="list the packaged scenarios",
        description="List the packaged scenarios, one a line, with what each is.",
    )
    copy = scenario_commands.add_parser(
        "copy",
        help="copy a packaged scenario to edit or run",
        description="Copy a packaged scenario (a name from `scenarios "
        "list`) to DEST (a file or folder; default: "
        "NAME.toml here). An existing file is not replaced.",
    )
    copy.add_argument("name", metavar="NAME")
    copy.add_argument("dest", nargs="?", metavar="DEST")

    # listed for --help only: main() hands `width ...` to particledyn.sweep.width.width_main
    commands.add_parser(
        "width", help="infinite-width convergence study of a mean-field scenario", add_help=False
    )
    completion = commands.add_parser(
        "completion",
        help="print a shell completion script",
        description="Print a completion script generated from this parser; "
        "use it with: source <(particledyn completion bash)",
    )
    completion.add_argument("shell", choices=["bash"])

    repair = commands.add_parser(
        "repair",
        help="make a killed run's file readable by plain h5py and pyh5md",
        description="Clear the write flags a killed writer left (as h5clear does) and cut every "
        "series to its committed records, in a copy RUN.repaired.h5 (default) or in place. "
        "Refuses a file a live run is writing.",
    )
    repair.add_argument("path", metavar="RUN.h5")
    where = repair.add_mutually_exclusive_group()
    where.add_argument("--in-place", action="store_true", help="repair RUN.h5 itself")
    where.add_argument("-o", "--output", metavar="OUT.h5", help="path of the repaired copy")

    export = commands.add_parser(
        "export",
        help="write a run's frames in a form another tool reads",
        description="--mdanalysis: a plain H5MD file with 3-D positions (2-D particles padded with a "
        "zero coordinate; MDAnalysis reads only 3-D boxes), RUN.mdanalysis.h5 by default. "
        "Open it with MDAnalysis's load_new(..., format='H5MD', convert_units=False).",
    )
    export.add_argument("path", metavar="RUN.h5")
    export.add_argument(
        "--mdanalysis", action="store_true", required=True, help="the MDAnalysis form (the only one so far)"
    )
    export.add_argument("-o", "--output", metavar="OUT.h5", help="path of the exported file")
    export.add_argument(
        "--coordinates",
        metavar="I,J,K",
        help="the particle coordinates that become x, y, z (needed when D > 3)",
    )
    export.add_argument("--overwrite", action="store_true", help="replace an existing output file")

    # listed for --help only: main() hands `sweep ...` to particledyn.sweep.sweep_main
    commands.add_parser("sweep", help="run a grid of runs (learning rates, seeds, N) on Dask", add_help=False)
    # listed for --help only: main() hands `campaign ...` to particledyn.sweep.campaign.campaign_main
    commands.add_parser(
        "campaign",
        help="run the phase-transition sweeps; write the critical-rate table and figure",
        add_help=False,
    )
    commands.add_parser(
        "keys",
        aliases=["scenario-keys"],
        help="list every scenario key with its type, default and meaning",
        description="List every documented scenario key.",
    )
    commands.add_parser(
        "show-default",
        help="print the built-in default scenario",
        description="Print the built-in default scenario (TOML).",
    )
    return parser


def _fail(message: str | BaseException, code: int) -> int:
    """Print ``message`` (a text or the exception to report) on one line; return ``code``."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    return code


def _overrides(settings) -> dict:
    """``--set KEY=VALUE`` arguments as dotted overrides (ScenarioError on a malformed one)."""
    from .scenario import parse_override

    return dict(parse_override(text) for text in settings)


def _load(args):
    from .scenario import default_scenario, load_scenario

    overrides = _overrides(args.set)
    if args.steps is not None:
        overrides["run.steps"] = args.steps
    if args.threads is not None:
        overrides["run.threads"] = args.threads
    if args.scenario is not None:
        return load_scenario(args.scenario, overrides)
    return default_scenario(overrides)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _summary(path: str, checkpoint: bool = True) -> str:
    from .runner import run_info

    try:
        info = run_info(path)
    except (OSError, KeyError, ValueError):
        return "what it committed"
    text = f"{info['frames']} frames (last at step {info['last_step']})"
    return text + (f", last checkpoint at step {info['checkpoint_step']}" if checkpoint else "")


def _command_run(args) -> int:
    from .scenario.checks import ScenarioError

    if args.default and args.scenario is not None:
        return _fail(f"--default and a scenario ({args.scenario}) given: choose one", EXIT_USAGE)
    if args.resume and args.overwrite:
        return _fail("--resume and --overwrite given: choose one", EXIT_USAGE)
    if args.force and not args.resume:
        return _fail("--force applies to --resume only", EXIT_USAGE)
    if args.resume and args.threads is not None:
        return _fail(
            "--threads with --resume: a resumed run uses the thread count it started with", EXIT_USAGE
        )
    if args.steps is not None and args.steps < 0:
        return _fail(f"--steps {args.steps}: expected an integer >= 0", EXIT_USAGE)
    if args.resume and args.set and args.scenario is None:
        return _fail(
            "--set with --resume: a resumed run keeps the scenario stored in its file "
            "(give the scenario file to check it against the file)",
            EXIT_USAGE,
        )
    try:
        figure_settings = _figure_settings(args)
    except ValueError as exc:
        return _fail(exc, EXIT_USAGE)
    path = args.out
    try:
        scenario = None
        if not (args.resume and args.scenario is None and not args.default and path is not None):
            scenario = _load(args)
            path = path if path is not None else scenario.resolved.output.path
    except ScenarioError as exc:
        return _fail(exc, EXIT_USAGE)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        code = _run_deferring_signals(args, scenario, path)
        if args.mpi and not _mpi_root():
            return code  # rank 0 draws the figures
        # a diverged run's figures show what it recorded up to the divergence
        if code not in (EXIT_OK, EXIT_DIVERGED) or not args.plots or not os.path.exists(path):
            return code
        try:
            _plot_and_summarize(path, None, figure_settings)
        except KeyboardInterrupt:
            print(
                f"interrupted while drawing the figures: draw them with: particledyn plot {path}",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
        return code
    finally:
        signal.signal(signal.SIGTERM, previous)


def _mpi_root() -> bool:
    from .mpi.cli import is_root

    return is_root()


def _run_deferring_signals(args, scenario, path) -> int:
    """Start or resume the run, its messages and exit status. SIGINT and SIGTERM stop it at a
    step boundary, after that step's checkpoint (:mod:`particledyn.interrupts`); once it has
    stopped, further signals are ignored until the message is out."""
    from .interrupts import deferred_signals

    outer = None
    if args.mpi:
        from .mpi.cli import deferral

        outer = deferral()
    try:
        with deferred_signals(outer) as signals:
            code = _run_or_resume(args, scenario, path)
            signals.settle()  # the outcome is decided (and said): later signals change nothing
            return code
    except KeyboardInterrupt:  # a signal after the run had stopped, acted on as the guard ends
        print(_interrupted_message(path), file=sys.stderr)
        return EXIT_INTERRUPTED


def _run_or_resume(args, scenario, path) -> int:
    from .backends import GpuUnavailableError
    from .io import H5MDWriteError
    from .observers import ObserverError
    from .runner import ResumeError, RunModeError, resume_run, start_run
    from .scenario.checks import ScenarioError
    from .simulation import DivergenceError

    if args.mpi:
        from .mpi.cli import runners

        start_run, resume_run = runners()  # noqa: F811 - the sharded twins
    try:
        if args.resume:
            result = resume_run(path, scenario, args.steps, progress=args.progress, force=args.force)
            if result.final_step == result.start_step:
                print(f"{path}: already finished at step {result.final_step}; nothing to do")
            else:
                print(
                    f"resumed {path} at step {result.start_step}: now at step {result.final_step} "
                    f"of {result.total_steps}, finished, in {result.elapsed:.1f} s"
                )
        else:
            result = start_run(scenario, path, overwrite=args.overwrite, progress=args.progress)
            print(
                f"wrote {path}: {result.final_step} steps, finished, in {result.elapsed:.1f} s; "
                f"{_summary(path)}"
            )
        return EXIT_OK
    except ScenarioError as exc:
        return _fail(exc, EXIT_USAGE)
    except FileExistsError as exc:
        return _fail(exc, EXIT_USAGE)
    except RunModeError as exc:  # with or without --mpi, the rank count: the invocation is wrong
        return _fail(exc, EXIT_USAGE)
    except ResumeError as exc:
        return _fail(exc, EXIT_ERROR)
    except DivergenceError as exc:
        return _fail(_diverged_message(exc, path), EXIT_DIVERGED)
    except KeyboardInterrupt:
        print(_interrupted_message(path), file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        raise
    except (H5MDWriteError, OSError) as exc:
        return _fail(exc, EXIT_ERROR)
    except ObserverError as exc:
        return _fail(f"{exc}; {_kept(path)}", EXIT_ERROR)
    except GpuUnavailableError as exc:
        return _fail(exc, EXIT_USAGE)
    except MemoryError:
        return _fail(
            f"out of memory: reduce init.n, data.n or the observers' work; {_kept(path)}", EXIT_ERROR
        )


def _kept(path: str) -> str:
    """What an error left: the file and its checkpoint, or no file."""
    if not os.path.exists(path):
        return "no file was written"
    return f"{path} keeps {_summary(path)} (not finished)"


def _diverged_message(exc, path: str) -> str:
    tail = (
        f"{path} keeps {_summary(path, checkpoint=False)} and is marked not finished"
        if os.path.exists(path)
        else "no file was written"
    )
    text = f"the run diverged at step {exc.step}: {exc.what()} (lr = {exc.lr:g}); try a smaller learning rate"
    if exc.numpy_warnings:
        text += f" (numpy warned: {'; '.join(exc.numpy_warnings[:3])}"
        text += f"; and {len(exc.numpy_warnings) - 3} more)" if len(exc.numpy_warnings) > 3 else ")"
    return f"{text}. {tail}"


def _interrupted_message(path: str) -> str:
    from .runner import run_info

    if not os.path.exists(path):
        return "interrupted: no file was written"
    from .mpi.mode import recorded_ranks, resume_command

    try:
        info = run_info(path)
        finished, ranks = info["status"] == "finished", recorded_ranks(info["other_parameters"])
    except (OSError, KeyError, ValueError):
        finished, ranks = False, None
    if finished:
        return f"interrupted as the run finished: {path} is complete ({_summary(path)})"
    return f"interrupted: {path} keeps {_summary(path)}; continue with: {resume_command(path, ranks)}"


def format_info(info: dict) -> str:
    """The text ``particledyn info`` prints for a :func:`particledyn.runner.run_info` dict."""
    from .mpi.mode import recorded_ranks, resume_command

    scenario_written = info.get("scenario_written", True)
    ranks = recorded_ranks(info.get("other_parameters") or {})
    stopped = "stopped before the end (killed or interrupted); " + (
        f"continue with: {resume_command(info['path'], ranks)}"
        if scenario_written
        else "not resumable by particledyn run (it needs a file that particledyn run wrote from a scenario)"
    )
    status = {
        "finished": "finished",
        "running": f"running (writer {info['writer']})",
        "diverged": f"diverged at step {info['checkpoint_step']} (not finished)",
        "stopped": stopped,
    }[info["status"]]
    total = info["total_steps"]
    if scenario_written:
        title = f"{info['path']}: run {info['name']!r} ({info['scenario_source']})"
    else:
        title = f"{info['path']}: written through the Python API (no scenario stored)"
    lines = [title, f"  status      {status}"]
    if info["frames"]:
        progress = f"  progress    step {info['last_step']}" + (f" of {total}" if total is not None else "")
        lines.append(
            progress + f"; {info['frames']} frames (steps {info['first_step']}..{info['last_step']})"
        )
    else:
        lines.append("  progress    no committed frame yet")
    checkpoint = "none" if info["checkpoint_step"] is None else f"at step {info['checkpoint_step']}"
    if info["status"] == "diverged":
        checkpoint += " (the run diverged: not resumable)"
    lines.append(f"  checkpoint  {checkpoint}")
    for series, steps in info.get("damaged", {}).items():
        shown = ", ".join(str(s) for s in steps[:10])
        shown += f" ... ({len(steps)} in all)" if len(steps) > 10 else ""
        lines.append(f"  DAMAGED     {series}: records at steps {shown} (checksum mismatch)")
    if info["written"] is None:
        lines.append("  particles   no particle series")
    else:
        lines.append(
            f"  particles   N = {_known(info['n_particles'])}, D = {_known(info['dim'])}; "
            f"{info['written']} written as {info['dtype']}; "
            f"series: {', '.join(info['particle_series'])}"
        )
    if info["observables"]:
        lines.append("  observables")
        for name, keys in info["observables"].items():
            counts = sorted(set(keys.values()))
            records = "/".join(str(c) for c in counts)
            lines.append(f"    {name} ({records} records): {', '.join(keys)}")
    if info.get("overrides"):
        lines.append("  set         " + ", ".join(f"{k} = {v!r}" for k, v in info["overrides"].items()))
    versions = info["versions"]
    settings = [f"{name} {info[name]}" for name in ("seed", "threads", "backend") if info[name] is not None]
    lines.append(
        "  settings    "
        + ", ".join(
            settings
            + [f"{k} {versions[k]}" for k in ("particledyn", "numpy", "numba", "h5py") if k in versions]
        )
    )
    for plugin in info.get("plugins") or []:
        dist = f"{plugin['dist']} {plugin['version']}" if plugin.get("dist") else "no distribution"
        state = "" if plugin.get("loaded", True) else "; NOT importable here"
        lines.append(f"  plugin      {plugin['module']} ({dist}, {plugin['source']}{state})")
    extra = info.get("other_parameters") or {}
    if extra:
        lines.append("  parameters  " + ", ".join(f"{k} = {_short(v)}" for k, v in extra.items()))
    return "\n".join(lines)


def _known(value) -> str:
    return "?" if value is None else str(value)


def _short(value, width: int = 60) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _figure_settings(args) -> dict:
    """``--format``/``--dpi``/``--movie`` as keyword arguments of :func:`particledyn.plotting.plot_run`."""
    return {
        k: v
        for k, v in {"format": args.figure_format, "dpi": args.dpi, "movie": args.movie}.items()
        if v is not None
    }


def _plot_and_summarize(path: str, out_dir, settings: dict | None = None) -> None:
    from .plotting import plot_run
    from .summary import summarize_run, write_summary

    summary = summarize_run(path)
    figures = plot_run(path, out_dir, **(settings or {}), summary=summary)
    summary_file = write_summary(path, summary=summary)
    where = os.path.dirname(figures[0]) if figures else "nowhere (no plottable observables)"
    print(f"figures: {len(figures)} in {where}; summary: {summary_file}")
    print(f"verdict: {summary['verdict']}")


def _command_plot(args) -> int:
    try:
        settings = _figure_settings(args)
    except ValueError as exc:
        return _fail(exc, EXIT_USAGE)
    try:
        _plot_and_summarize(args.path, args.out, settings)
    except BrokenPipeError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        return _fail(exc, EXIT_ERROR)
    return EXIT_OK


def _command_info(args) -> int:
    import json

    from .runner import run_info

    try:
        info = run_info(args.path)
        print(json.dumps(info, default=str) if args.json else format_info(info))
    except BrokenPipeError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        return _fail(exc, EXIT_ERROR)
    return EXIT_OK


def _command_repair(args) -> int:
    from .io.repair import repair

    try:
        repaired = repair(args.path, output=args.output, in_place=args.in_place)
    except (OSError, ValueError) as exc:
        return _fail(exc, EXIT_ERROR)
    if repaired is None:
        print(f"{args.path} was closed cleanly: nothing to repair")
    else:
        print(f"repaired: {repaired} (plain h5py and pyh5md can open it)")
    return EXIT_OK


def _command_export(args) -> int:
    from .io.mdanalysis import export_mdanalysis

    try:
        coordinates = None if args.coordinates is None else [int(c) for c in args.coordinates.split(",")]
    except ValueError:
        return _fail(
            f"--coordinates {args.coordinates!r}: expected comma-separated integers, e.g. 0,1,2", EXIT_USAGE
        )
    try:
        out = export_mdanalysis(args.path, args.output, coordinates, overwrite=args.overwrite)
    except (OSError, ValueError) as exc:
        return _fail(exc, EXIT_ERROR)
    print(f"exported: {out} (MDAnalysis: load_new(..., format='H5MD', convert_units=False))")
    return EXIT_OK


def _command_validate(args) -> int:
    from .scenario import load_scenario
    from .scenario.checks import ScenarioError

    try:
        scenario = load_scenario(args.scenario, _overrides(args.set))
    except ScenarioError as exc:
        return _fail(exc, EXIT_USAGE)
    r = scenario.resolved
    observers = ", ".join(o.type for o in r.observers) or "none"
    n = getattr(r.init, "n", None)
    print(
        f"OK {args.scenario}: run {r.run.name!r}, {r.run.steps} steps, kernel "
        f"{r.kernel.kind}, optimizer {r.optimizer.name}, lr {r.schedule.lr:g}, "
        f"N = {'(union)' if n is None else n}; observers: {observers}"
    )
    return EXIT_OK


def _command_scenarios(args) -> int:
    from .paper_scenarios import copy_scenario, describe, list_scenarios
    from .scenario.checks import ScenarioError

    if args.scenarios_command == "list":
        scenarios = list_scenarios()
        width = max((len(name) for name in scenarios), default=0)
        for name, resource in scenarios.items():
            print(f"{name:<{width}}  {describe(resource)}")
        return EXIT_OK
    try:
        written = copy_scenario(args.name, args.dest)
    except ScenarioError as exc:
        return _fail(exc, EXIT_USAGE)
    except (FileExistsError, OSError) as exc:
        return _fail(exc, EXIT_ERROR)
    print(f"wrote {written}; run it with: particledyn run {written}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``particledyn`` command; returns the exit status.

    Output into a pipe closed early (``particledyn info a.h5 | head``) ends the
    command quietly with status 1.
    """
    from .plugins import PluginError

    try:
        status = _main(argv)
        sys.stdout.flush()
    except PluginError as exc:  # an installed plugin that fails to import, wherever it was first read
        return _fail(exc, EXIT_USAGE)
    except BrokenPipeError:
        # the reader is gone: point stdout at /dev/null so the flush at exit cannot fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_ERROR
    return status


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sweep"]:
        from .sweep import sweep_main

        return sweep_main(argv[1:])
    if argv[:1] == ["campaign"]:
        from .sweep.campaign import campaign_main

        return campaign_main(argv[1:], prog="particledyn campaign")
    if argv[:1] == ["width"]:
        from .sweep.width import width_main

        return width_main(argv[1:], prog="particledyn width")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if args.command == "run" and args.mpi:
        from .mpi.cli import run_command

        return run_command(lambda: _command_run(args))
    if args.command == "run":
        return _command_run(args)
    if args.command == "info":
        return _command_info(args)
    if args.command == "plot":
        return _command_plot(args)
    if args.command == "repair":
        return _command_repair(args)
    if args.command == "export":
        return _command_export(args)
    if args.command == "validate":
        return _command_validate(args)
    if args.command == "scenarios":
        return _command_scenarios(args)
    if args.command == "completion":
        from .completion import bash_completion

        sys.stdout.write(bash_completion(parser))
        return EXIT_OK
    if args.command in ("keys", "scenario-keys"):
        from .scenario import describe_keys

        sys.stdout.write(describe_keys())
        return EXIT_OK
    from .scenario import default_scenario_text

    sys.stdout.write(default_scenario_text())
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
