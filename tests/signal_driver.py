"""Runs ``particledyn run`` in a process that sends itself signals at a chosen moment.

Used by ``test_signals.py``: ``python signal_driver.py`` is a fork server that imports
particledyn once, then reads batches of jobs from stdin (one JSON list per line), forks one
child process per job, and answers each batch with one JSON list of exit statuses. A job is
``{"argv": [...], "log": PATH}`` plus, for an interrupted run, ``"trial": {"point", "call",
"signal", "mode", "out"}``; the child writes its stdout and stderr to ``log`` and ``log.err``.

POINT names where the signal is sent, on the CALL-th call there (1-based):

- ``field``: inside the kernel's field, before the update;
- ``direction``: after the optimizer updated its state in place, before the positions move;
- ``apply``: after the positions were updated in place, before the step counter moves;
- ``step``: after the step counter moved, before the step's frame and observables;
- ``commit``: between the commits of the time series of one batch (half a batch committed);
- ``observer``: inside an observer's ``observe`` (CALL counts the loss observer's calls);
- ``checkpoint``: inside a checkpoint write (encoded, nothing written yet).

MODE: ``single`` (one signal), ``twice`` (two signals in a row at the same moment: the
second may abort the step) or ``cleanup`` (a second signal inside the next checkpoint write
after the first, as a second Ctrl-C during the clean-up). SIGNAL is INT or TERM. When the
first signal goes, ``OUT.kill.json`` records the last step any record was handed to the sink at.
"""

import json
import os
import signal
import sys


def patch(out, point, call, signame, mode):
    """Send this process SIG<signame> on the ``call``-th call at ``point`` (see the module notes)."""
    import particledyn.io.h5md_writer as writer
    import particledyn.simulation as simulation
    from particledyn import optimizers
    from particledyn.kernels.two_layer import TwoLayerNet
    from particledyn.observers import LossObserver

    sig = getattr(signal, f"SIG{signame}")
    calls = {"n": 0, "sent": False, "cleanup": False, "last_step": -1}

    def send():
        with open(out + ".kill.json", "w") as f:
            json.dump({"signal_step": calls["last_step"], "point": point, "mode": mode}, f)
        calls["sent"] = True
        if mode == "cleanup":
            calls["cleanup"] = True
        if mode == "twice":
            try:
                os.kill(os.getpid(), sig)
            finally:
                os.kill(os.getpid(), sig)
        else:
            os.kill(os.getpid(), sig)

    def hit():
        calls["n"] += 1
        if calls["n"] == call and not calls["sent"]:
            send()

    def wrap(owner, name, before=False):
        original = getattr(owner, name)

        def wrapped(*args, **kwargs):
            if before:
                hit()
            result = original(*args, **kwargs)
            if not before:
                hit()
            return result

        setattr(owner, name, wrapped)

    # the last step a record was handed to the sink at (what a signal may not lose, committed
    # or still staged for the next batch commit)
    stage = writer._Series.stage

    def tracked_stage(self, value, step, time):
        held = stage(self, value, step, time)
        calls["last_step"] = max(calls["last_step"], int(step))
        return held

    writer._Series.stage = tracked_stage
    commit = writer._Series.commit

    def tracked_commit(self):
        commit(self)
        if point == "commit":
            hit()

    writer._Series.commit = tracked_commit
    encode = writer.encode_checkpoint

    def encode_hook(checkpoint):
        blob = encode(checkpoint)
        if calls["cleanup"]:
            calls["cleanup"] = False
            os.kill(os.getpid(), sig)
        if point == "checkpoint":
            hit()
        return blob

    writer.encode_checkpoint = encode_hook
    if point == "field":
        wrap(TwoLayerNet, "field", before=True)
    elif point == "direction":
        for cls in (optimizers.GD, optimizers.Momentum, optimizers.Adam):
            wrap(cls, "direction")
    elif point == "apply":
        from particledyn.backends import Backend

        wrap(Backend, "apply_step")  # the CPU backend's in-place update
    elif point == "step":
        wrap(simulation.Simulation, "step")
    elif point == "observer":
        wrap(LossObserver, "observe")
    elif point not in ("commit", "checkpoint"):
        raise SystemExit(f"unknown point {point!r}")


def child(job):
    """The forked process of one job: never returns."""
    code = 1
    try:
        out = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(job["log"] + ".err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1)
        os.dup2(err, 2)
        from particledyn.cli import main as cli_main

        trial = job.get("trial")
        if trial:
            patch(trial["out"], trial["point"], trial["call"], trial["signal"], trial["mode"])
        code = cli_main(job["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - the test reads the traceback from the log
        import traceback

        traceback.print_exc()
        code = 99
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve():
    """Fork one child per job of each batch read from stdin; answer with their exit statuses."""
    import tqdm.auto  # noqa: F401 - imported once, before the forks
    from numba.core.registry import cpu_target

    import particledyn.backends  # noqa: F401,E401
    import particledyn.cli  # noqa: F401 - imported once, before the forks
    import particledyn.clouds
    import particledyn.data
    import particledyn.geometry._kernel_sharpness  # noqa: F401
    import particledyn.geometry.observers  # noqa: F401
    import particledyn.io  # noqa: F401
    import particledyn.kernels.two_layer  # noqa: F401
    import particledyn.runner  # noqa: F401
    import particledyn.topology.observers  # noqa: F401

    # numba's typing and lowering registries, loaded before the first cached function; this
    # starts no thread (the threading layer starts in each child, at its first parallel loop)
    cpu_target.target_context.refresh()
    print("ready", flush=True)
    for line in sys.stdin:
        pids = []
        for job in json.loads(line):
            pid = os.fork()
            if pid == 0:
                child(job)
            pids.append(pid)
        codes = []
        for pid in pids:
            _, status = os.waitpid(pid, 0)
            codes.append(os.waitstatus_to_exitcode(status))
        print(json.dumps(codes), flush=True)


if __name__ == "__main__":
    serve()
