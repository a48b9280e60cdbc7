"""Every reader entry point on damaged run files, timed: run as a script, prints one JSON line a call.

``python damage_trials.py DIR FLIPS`` writes a finished and a killed run file
(the killed one: a finished file with the superblock flags a killed SWMR
writer leaves), makes damaged copies (truncated to 50-95 %, FLIPS random bit
flips each, foreign files, an external link) and calls ``open_run`` (reading
everything), ``run_info``, ``particledyn info``, ``particledyn plot`` and
``H5MDSink.resume`` on each. Outcomes: ``ok`` (the data read equal what was
written), ``error`` (an OSError, ValueError or KeyError with a one-line
message, or exit 1 with one line on stderr), ``wrong`` (data differ from what
was written and no error), ``traceback`` (any other exception).
"""

import contextlib
import io
import json
import os
import shutil
import sys
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from io_helpers import checkpoint, frame, observables  # noqa: E402

from particledyn.cli import main as cli_main  # noqa: E402
from particledyn.io import H5MDSink, open_run  # noqa: E402
from particledyn.io.superblock import lookup3  # noqa: E402
from particledyn.runner import run_info  # noqa: E402

STEPS = 30
EXPECTED = (OSError, ValueError, KeyError)


def write_base(path):
    sink = H5MDSink(path, {"seed": 7, "scenario_toml": "x = 1\n"})
    for k in range(STEPS):
        sink.write_frame(k, 0.5 * k, frame(k), {"velocity": -frame(k)})
        sink.write_observables("obs", k, 0.5 * k, observables(k))
        if k % 5 == 0 or k == STEPS - 1:
            sink.write_checkpoint(checkpoint(k))
    sink.close(finished=True)


def mark_killed(path):
    """The superblock flags a killed SWMR writer leaves (checksum fixed as HDF5 would)."""
    data = bytearray(open(path, "rb").read())
    data[11] = 5
    data[44:48] = lookup3(bytes(data[:44])).to_bytes(4, "little")
    open(path, "wb").write(bytes(data))


def read_all(path):
    """Everything open_run gives; returns whether it all equals what was written."""
    with open_run(path, timeout=2.0) as run:
        steps = run.steps
        good = np.array_equal(run.positions(), np.stack([frame(int(k)) for k in steps]))
        for key in ("scalar", "fixed", "ragged"):
            s, values = run.observable("obs", key)
            for k, v in zip(s, values):
                good &= bool(np.array_equal(np.asarray(v), np.asarray(observables(int(k))[key])))
        ckpt = run.checkpoint()
        if ckpt is not None:
            good &= bool(np.array_equal(ckpt["positions"], frame(int(ckpt["step"]))))
        run.finished
        run.damaged()
    return good


def cli(args):
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = cli_main(args)
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    if code == 0:
        return "ok", ""
    if code == 1 and len(lines) == 1 and lines[0].startswith("error: "):
        return "error", lines[0]
    return "traceback", f"exit {code}: {err.getvalue()[-300:]}"


def resume(path):
    sink, ckpt = H5MDSink.resume(path)
    sink.close(finished=False)
    return np.array_equal(ckpt["positions"], frame(int(ckpt["step"])))


def call(entry, path):
    began = time.monotonic()
    try:
        if entry == "open_run":
            outcome, message = ("ok" if read_all(path) else "wrong"), ""
        elif entry == "run_info":
            run_info(path)
            outcome, message = "ok", ""
        elif entry == "resume":
            outcome, message = ("ok" if resume(path) else "wrong"), ""
        else:
            outcome, message = cli([entry, path] + (["--out", path + "_fig"] if entry == "plot" else []))
    except EXPECTED as exc:
        text = str(exc)
        outcome = "error" if text and "\n" not in text else "traceback"
        message = text
    except Exception as exc:  # noqa: BLE001 - what is being counted
        outcome, message = "traceback", f"{type(exc).__name__}: {exc}"
    return {
        "entry": entry,
        "seconds": round(time.monotonic() - began, 3),
        "outcome": outcome,
        "message": message[:300],
    }


def variants(directory, flips, rng):
    finished = os.path.join(directory, "finished.h5")
    write_base(finished)
    killed = os.path.join(directory, "killed.h5")
    shutil.copy(finished, killed)
    mark_killed(killed)
    out = []
    for base in (finished, killed):
        data = open(base, "rb").read()
        tag = os.path.basename(base)[:-3]
        for percent in (50, 60, 70, 80, 90, 95):
            out.append((f"{tag}-truncated-{percent}", data[: len(data) * percent // 100]))
        for i in range(flips):
            damaged = bytearray(data)
            for offset in rng.integers(0, len(data), size=4):
                damaged[offset] ^= 1 << int(rng.integers(8))
            out.append((f"{tag}-flipped-{i}", bytes(damaged)))
    out.append(("foreign-random", rng.integers(0, 256, size=3_000_000, dtype=np.uint8).tobytes()))
    out.append(("foreign-text", b"steps = 10\n" * 10_000))
    out.append(("foreign-empty", b""))
    return out


def crafted(directory):
    """A run file whose frames group is an external link into another (victim) file."""
    victim = os.path.join(directory, "victim.h5")
    write_base(victim)
    path = os.path.join(directory, "crafted.h5")
    write_base(path)
    with h5py.File(path, "r+", libver="latest") as f:
        del f["particles/all/position"]
        f["particles/all/position"] = h5py.ExternalLink(victim, "particles/all/position")
    return path


def main():
    directory, flips = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    entries = ("open_run", "run_info", "info", "plot", "resume")
    cases = variants(directory, flips, rng)
    for name, data in cases:
        for entry in entries:
            path = os.path.join(directory, f"{name}.{entry}.h5")
            open(path, "wb").write(data)
            print(json.dumps({"case": name, **call(entry, path)}), flush=True)
    path = crafted(directory)
    for entry in entries:
        print(json.dumps({"case": "crafted-external-link", **call(entry, path)}), flush=True)


if __name__ == "__main__":
    main()
