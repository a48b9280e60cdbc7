"""Which run mode a run file belongs to: one process, or R MPI ranks. A file continues only in
the mode, and on the rank count, it was written with: the aggregate's sum is added in another
order otherwise, and the resumed run would no longer be bit-identical to one never interrupted.

No mpi4py here: the single-process resume asks this module too.
"""

from __future__ import annotations

__all__ = ["recorded_ranks", "resume_command", "check_resume_mode"]


def recorded_ranks(parameters: dict) -> int | None:
    """The rank count a run file's parameters record (None: a single-process run)."""
    mpi = parameters.get("mpi") or {}
    return None if mpi.get("ranks") is None else int(mpi["ranks"])


def resume_command(path, ranks: int | None) -> str:
    """The command that continues ``path`` in the mode it was written with."""
    if ranks is None:
        return f"particledyn run --resume --out {path}"
    return f"mpiexec -n {ranks} particledyn run --mpi --resume --out {path}"


def check_resume_mode(path, parameters: dict, ranks_here: int | None) -> None:
    """Refuse to continue ``path`` on ``ranks_here`` MPI ranks (None: one process without
    ``--mpi``) unless it was written so.

    Raises
    ------
    particledyn.runner.RunModeError
        One line naming the file, the mode it was written with and the command to run instead.
    """
    from ..runner import RunModeError

    ranks = recorded_ranks(parameters)
    if ranks == ranks_here:
        return
    instead = f"use: {resume_command(path, ranks)}"
    if ranks is None:
        raise RunModeError(
            f"cannot resume {str(path)!r} with --mpi: a single-process run wrote it; {instead}"
        )
    if ranks_here is None:
        raise RunModeError(
            f"cannot resume {str(path)!r} without --mpi: it ran on {ranks} MPI ranks; {instead} "
            "(one process adds the sums in another order: not bit-identical)"
        )
    raise RunModeError(
        f"cannot resume {str(path)!r} on {ranks_here} MPI ranks: it ran on {ranks}; {instead} "
        "(another count adds the sums in another order: not bit-identical)"
    )
