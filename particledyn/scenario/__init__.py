"""Scenario files: TOML in, a validated and fully resolved scenario out.

This package holds the whole scenario layer: the key checkers (:mod:`.checks`), the
registries of the sections (:mod:`.registry`, :mod:`.kernels`, :mod:`.observers`,
:mod:`.sections`), the built-in entries (``builtin_*``, loaded as plugins), the memory
check (:mod:`.memory`), and here the schema, validation and the scenario files.

Every key a scenario may hold is one :class:`~particledyn.scenario.checks.Key`
in the table :func:`schema` returns; validation, defaults and the output of
``particledyn keys`` all come from it. An unknown key, a wrong type, a missing
required key or an out-of-range value raises :class:`ScenarioError` with a
one-line message naming the key path, e.g.
``optimizer.beta1 = 1.5: expected 0 <= beta1 < 1``.

Sections: ``[run]``, ``[data]``, ``[kernel]``, ``[init]``, ``[optimizer]``,
``[schedule]``, ``[output]`` and ``[[observers]]`` (see ``particledyn keys``).
"""

from __future__ import annotations

import copy
import difflib
import re
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from types import SimpleNamespace
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python < 3.11
    import tomli as tomllib

from ..ensemble.scenario_keys import KEYS as ENSEMBLE_KEYS
from ..ensemble.scenario_keys import check_replicas
from .checks import (
    OPTIONAL,
    REQUIRED,
    Bool,
    Choice,
    Custom,
    Derived,
    Float,
    Int,
    Invalid,
    Key,
    ScenarioError,
    Str,
    Text,
    show,
    toml_type,
)
from .kernels import KERNEL_TYPES, KERNELS, KernelType, register_kernel
from .observers import OBSERVER_TYPES, OBSERVERS, ObserverType, register_observer
from .registry import Entry, Registry
from .resolved import ResolvedScenario, Section, freeze, section_type
from .sections import (
    CLOUD_SHAPES,
    DATA_KINDS,
    OPTIMIZERS,
    SCHEDULES,
    CloudShape,
    DataKind,
    OptimizerType,
    ScheduleType,
)

__all__ = [
    "Scenario",
    "ResolvedScenario",
    "Section",
    "ScenarioError",
    "schema",
    "validate_scenario",
    "parse_override",
    "parse_scenario",
    "load_scenario",
    "default_scenario",
    "describe_keys",
    "SECTIONS",
    "Key",
    "Entry",
    "Registry",
    "KERNELS",
    "KernelType",
    "register_kernel",
    "OBSERVERS",
    "ObserverType",
    "register_observer",
    "DATA_KINDS",
    "DataKind",
    "CLOUD_SHAPES",
    "CloudShape",
    "OPTIMIZERS",
    "OptimizerType",
    "SCHEDULES",
    "ScheduleType",
    "KERNEL_TYPES",
    "OBSERVER_TYPES",
]

#: The sections, in order: the fields of :class:`ResolvedScenario`.
SECTIONS = tuple(f.name for f in fields(ResolvedScenario))
#: The registry whose entry each section's selector key names, the selector's default and its docs.
_SELECTED: dict[str, tuple[Registry[Any], Any, str]] = {
    "data": (DATA_KINDS, REQUIRED, "Which data set."),
    "kernel": (KERNELS, "two_layer", "Which kernel."),
    "init": (CLOUD_SHAPES, REQUIRED, "Shape of the initial cloud."),
    "optimizer": (OPTIMIZERS, "gd", "Update rule."),
    "schedule": (SCHEDULES, "constant", "Learning-rate schedule."),
}
#: The key of each section that decides which of its other keys apply.
SELECTORS = {section: registry.path.split(".")[1] for section, (registry, _, _) in _SELECTED.items()}
SECTION_DOCS = {
    "run": "The run as a whole: length, seed, precision, threads.",
    "data": "The training data (particledyn.data.make_dataset).",
    "kernel": "The update kernel; the neuron dimension is D = input dimension + number of outputs.",
    "init": "The initial particle cloud (particledyn.clouds.make_cloud). The shape is sampled in its "
    "native dimension k (2 for regions and circle, 3 for surfaces and torus, k + 1 for spheres) "
    'and placed in R^D by init.embed: "first" fills coordinates 0..k-1 (the first input '
    'weights) and sets the rest to 0; "random_orthonormal" uses a random k-dimensional '
    "subspace. k > D is an error; gaussian clouds are drawn in R^D directly.",
    "optimizer": "The update rule applied to the kernel's field.",
    "schedule": "The learning rate; `schedule = 0.01` is short for [schedule] lr = 0.01.",
    "output": "The HDF5 (H5MD) output file: cadences, precision, checkpoints.",
    "observers": "Diagnostics, each an [[observers]] table with type, every, name and the type's "
    "options; every observer records at the first step.",
}

_INT64 = 2**63 - 1
_MAX_DEPTH = 16  # arrays and tables nested deeper than any key needs (rotation matrices use 2)
_COUNT = 2**31 - 1
_POSITIVE = Float(0.0, lo_open=True)
_NAME_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")
_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _run_name(value):
    if not isinstance(value, str):
        raise Invalid(f"expected a name of letters, digits and _ . + -, got {toml_type(value)}")
    if not _NAME_RE.match(value) or value in (".", ".."):
        raise Invalid("expected a name of letters, digits and _ . + -")
    return value


def _modules(value):
    if not isinstance(value, list) or not all(isinstance(v, str) and _MODULE_RE.match(v) for v in value):
        raise Invalid('expected an array of module names (such as "my_package.kernels")')
    if len(set(value)) != len(value):
        raise Invalid("expected distinct module names")
    return list(value)


def _subset(value):
    if isinstance(value, list):
        if not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _COUNT for v in value
        ):
            raise Invalid("expected a count >= 1 or a non-empty array of particle indices >= 0")
        if len(set(value)) != len(value):
            raise Invalid("expected distinct particle indices")
        return [int(v) for v in value]
    return Int(1, _COUNT).parse(value, "subset")


def _derived(text: str, path: str, transform=lambda v: v) -> Derived:
    section, name = path.split(".")
    return Derived(text, lambda done: transform(getattr(getattr(done, section), name)))


_SEED = Int(0, _INT64)

_BASE_SCHEMA: tuple[Key, ...] = (
    # [run]
    Key(
        "run.name",
        Custom("a name of letters, digits and _ . + -", _run_name, "str"),
        "Name of the run; the default output file is <name>.h5.",
        "particledyn",
    ),
    Key("run.description", Text(), "Free text, stored with the run.", ""),
    Key(
        "run.steps",
        Int(0, 2**62),
        "Total number of updates (--steps overrides it; a resumed run "
        "continues until this total). Required unless run.epochs is given.",
    ),
    Key(
        "run.epochs",
        Int(1, 2**62),
        'Run length in epochs, with optimizer.sampling = "epoch": run.steps '
        "becomes epochs x steps per epoch (ceil(training rows / batch size)). Give run.steps or run.epochs, "
        "not both; an override of run.steps (--steps, a sweep's steps) replaces it.",
    ),
    Key(
        "run.seed",
        _SEED,
        "Root seed: mini-batches at step t derive from (seed, t); default seed "
        "of the data and the initial cloud.",
        0,
    ),
    Key("run.dtype", Choice(("float32", "float64")), "Working precision of the particles.", "float64"),
    Key(
        "run.threads",
        Int(0, 4096),
        "Numba threads (0: all that numba sees). Bit-identical resumes need the same count.",
        0,
    ),
    Key(
        "run.divergence_growth",
        Float(0.0),
        "Growth test (particledyn.divergence.GrowthRule): the run "
        "diverged when the loss or max abs(x) grew more than this factor over run.divergence_window records "
        "and exceeds run.divergence_threshold x its start; 0 switches it off (NaN/inf still diverge).",
        100.0,
    ),
    Key("run.divergence_window", Int(1, 10**6), "Records the growth test looks back over.", 10),
    Key("run.divergence_threshold", Float(1.0), "Growth test: factor over the start value.", 1e8),
    Key(
        "run.backend",
        Choice(("numba", "cupy")),
        "Compute backend: 'numba' (CPU) or 'cupy' (NVIDIA GPU, needs the gpu extra; see docs/gpu.md).",
        "numba",
    ),
    Key(
        "run.plugins",
        Custom("an array of module names", _modules, "tuple[str, ...]"),
        "Modules imported before the "
        "scenario is checked, which register kernels, observers, ... (installed, or on PYTHONPATH; "
        "installed packages' particledyn.plugins entry points load without being listed).",
        [],
    ),
    *ENSEMBLE_KEYS,
    # [data]: data.kind and its keys from the data kinds' registry (see schema())
    Key("data.seed", _SEED, "Seed of the data (teacher, inputs, split).", _derived("run.seed", "run.seed")),
    # [kernel]: kernel.kind here, the options from the kernel registry (see schema())
    # [init]: init.shape and its keys from the cloud shapes' registry
    Key("init.seed", _SEED, "Seed of the cloud.", _derived("run.seed", "run.seed")),
    Key(
        "init.output_scale",
        _POSITIVE,
        "Factor on the output coordinates a_i (the last C of each "
        "neuron) after the cloud is placed, e.g. for a fan-in scale 1/sqrt(N) of the output layer "
        "(optional: 1).",
        OPTIONAL,
    ),
    # [optimizer]: optimizer.name and its keys from the optimizers' registry
    Key("optimizer.weight_decay", Float(0.0), "Coupled L2: adds weight_decay * x to the gradient.", 0.0),
    Key(
        "optimizer.batch_size",
        Int(1, _COUNT),
        "Mini-batch shared by all particles, drawn from (seed, step) (optional: the full training set).",
        OPTIONAL,
    ),
    Key(
        "optimizer.sampling",
        Choice(("step", "epoch")),
        '"step": a fresh batch every step, from (seed, '
        'step); "epoch": as PyTorch\'s DataLoader(shuffle=True): one permutation of the training rows per '
        "epoch, from (seed, epoch), walked in consecutive batches, the last one short (3500 rows, batch "
        "128: 28 steps per epoch).",
        "step",
    ),
    # [schedule]: schedule.kind and its keys from the schedules' registry
    Key("schedule.lr", _POSITIVE, "(Initial) learning rate eta.", REQUIRED),
    # [output]
    Key(
        "output.path",
        Str(),
        "Output file, relative to the working directory (--out overrides it).",
        _derived('"<run.name>.h5"', "run.name", lambda v: f"{v}.h5"),
    ),
    Key(
        "output.frame_every",
        Int(0, 2**62),
        "Position frames every this many steps (0: first and last only; the last frame is always written).",
        1,
    ),
    Key(
        "output.subset",
        Custom("a count or an array of indices", _subset, "int | tuple[int, ...]"),
        "Write only these particles: a count (evenly spaced indices) or an array of indices (optional: all).",
        OPTIONAL,
    ),
    Key(
        "output.dtype",
        Choice(("float32", "float64")),
        "Storage precision of frames.",
        _derived("run.dtype", "run.dtype"),
    ),
    Key(
        "output.optimizer_state", Bool(), "Also write the per-particle optimizer state with each frame.", True
    ),
    Key(
        "output.checkpoint_every",
        Int(0, 2**62),
        "Checkpoint (for --resume) every this many steps (0: only at the end).",
        100,
    ),
    Key(
        "output.compression",
        Choice(("none", "gzip")),
        "Frame compression (gzip is ~20x slower to write and saves little on float data).",
        "none",
    ),
    Key(
        "output.durability",
        Choice(("checkpoint", "frame")),
        "When the file is fsync'ed: at every "
        "checkpoint and at the end, or also after every frame (slower; survives a power loss).",
        "checkpoint",
    ),
    Key(
        "output.commit_seconds",
        Float(0.0, 86400.0),
        "Frames and observables are staged in memory and committed to the file in batches: at every "
        "checkpoint, at the end, at a signal, and at the first record this many seconds after the "
        "oldest staged one (or once 8 MiB are staged). A live reader sees them then; a SIGKILL loses "
        'only staged records, all after the last checkpoint (--resume cuts to it anyway). 0 (or durability = "frame"): '
        "commit every record.",
        1.0,
    ),
)

_OBSERVER_COMMON = (
    Key("type", Choice(("loss",)), "Which observer (see below).", REQUIRED),
    Key(
        "every",
        Custom('a count of steps >= 1 or "N epochs"', lambda v: _cadence(v), "int | str"),
        'Cadence in steps, or "N epochs" with optimizer.sampling = "epoch" (N times the steps per '
        "epoch, e.g. 28 for 3500 rows in batches of 128).",
        1,
    ),
    Key(
        "name",
        Custom("a name without '/'", lambda v: _observer_name(v), "str"),
        "HDF5 group observables/<name> (default: the type; needed to use a type twice).",
        OPTIONAL,
    ),
)


_EPOCHS_RE = re.compile(r"^\s*([0-9]+)\s+epochs?\s*$")


def _cadence(value):
    if isinstance(value, str):
        match = _EPOCHS_RE.match(value)
        if match and 1 <= int(match.group(1)) <= 2**62:
            count = int(match.group(1))
            return f"{count} epoch{'s' * (count != 1)}"
        raise Invalid('expected a count of steps >= 1 or "N epochs" (N >= 1)')
    return Int(1, 2**62).parse(value, "every")


def cadence_steps(every, steps_per_epoch: int | None) -> int:
    """An observer's cadence in steps: ``every`` as validated (a count, or ``"N epochs"``)."""
    if isinstance(every, str):
        if steps_per_epoch is None:
            raise ScenarioError(
                f'every = "{every}": expected optimizer.sampling = "epoch" (epochs count its batches)'
            )
        return int(every.split()[0]) * int(steps_per_epoch)
    return int(every)


def _observer_name(value):
    if not isinstance(value, str):
        raise Invalid(f"expected a non-empty name without '/', got {toml_type(value)}")
    if not value or "/" in value or value == "." or "\n" in value or "\x00" in value:
        raise Invalid("expected a non-empty name without '/'")
    return value


def _selected_keys(section: str) -> list[Key]:
    """The selector key of a section and the keys of its registry's entries, each Key once with
    ``when`` naming the entries that take it."""
    registry, default, doc = _SELECTED[section]
    keys: dict[int, Key] = {}
    for entry in registry.values():
        for key in entry.options:
            known = keys.get(id(key))
            # a key seen before has its ``when`` set here, so ``or ()`` only covers the first time
            earlier = (known.when or ()) if known is not None else ()
            keys[id(key)] = replace(key, when=earlier + (entry.name,))
    return [Key(registry.path, registry.checker(), doc, default), *keys.values()]


def schema() -> tuple[Key, ...]:
    """Every documented key of the sections (observers excluded), in order.

    Built on each call from the registries, so that entries registered later (plugins) appear.
    """
    out: list[Key] = []
    for section in SECTIONS[:-1]:
        common = [k for k in _BASE_SCHEMA if k.path.startswith(section + ".")]
        if section in _SELECTED:
            selector, *options = _selected_keys(section)
            out += [selector, *common, *options]
        else:
            out += common
    return tuple(out)


# ---------------------------------------------------------------- validation
def _resolve_default(key: Key, done: SimpleNamespace) -> Any:
    if isinstance(key.default, Derived):
        return key.default.fn(done)
    if key.default is OPTIONAL:
        return None
    return copy.deepcopy(key.default)


def _unknown(where: str, name: str, valid: list[str], context: str) -> ScenarioError:
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    if not name.isprintable() and where.endswith(name):  # a newline in a key: keep the error one line
        where = where[: len(where) - len(name)] + repr(name)
    return ScenarioError(f"{where}: unknown key{hint}; valid keys{context}: {', '.join(valid)}")


def _annotation(key: Key) -> str:
    """The field type of a key's resolved value (None where it is optional)."""
    text = key.check.annotation()
    return f"{text} | None" if key.default is OPTIONAL and text != "Any" else text


def _validate_table(
    table: Mapping, keys: list[Key], where: str, selector: str | None, done: SimpleNamespace
) -> tuple[str | None, dict[str, Any], dict[str, str]]:
    """Validate one table against its keys; ``where`` prefixes the paths in errors.

    Returns the selector's value, the resolved values and their field types, in order;
    ``done`` holds the sections validated before (for derived defaults).
    """
    by_name: dict[str, list[Key]] = {}
    for key in keys:
        by_name.setdefault(key.name, []).append(key)
    out: dict[str, Any] = {}
    choice = None
    if selector is not None:
        (sel_key,) = by_name[selector]
        if selector in table:
            choice = sel_key.parse(table[selector], f"{where}.{selector}")
        elif sel_key.default is REQUIRED:
            raise ScenarioError(
                f"{where}.{selector}: missing required key ({sel_key.check.describe(selector)})"
            )
        else:
            choice = _resolve_default(sel_key, done)
        out[selector] = choice
    applicable: dict[str, Key] = {}  # the keys that apply to this choice, by name
    for name, ks in by_name.items():
        match = next((k for k in ks if k.when is None or choice in k.when), None)
        if match is not None:
            applicable[name] = match
    valid = list(applicable)
    context = f" for {where}.{selector} = {show(choice)}" if selector else f" in {where}"
    for name, value in table.items():
        if name == selector:
            continue
        path = f"{where}.{name}"
        found = applicable.get(name)
        if found is None:
            if name in by_name:
                users = sorted({v for k in by_name[name] for v in (k.when or ())})
                raise ScenarioError(
                    f"{path} = {show(value)}: not used when {where}.{selector} = "
                    f"{show(choice)} (only for {', '.join(users)})"
                )
            raise _unknown(path, name, valid, context)
        out[name] = found.parse(value, path)
    for name in valid:
        if name in out:
            continue
        key = applicable[name]
        if key.default is REQUIRED:
            raise ScenarioError(
                f"{where}.{name}: missing required key ({key.check.describe(name)})"
                + (f" for {where}.{selector} = {show(choice)}" if key.when else "")
            )
        out[name] = _resolve_default(key, done)
    order = [name for name in [selector] * (selector is not None) + valid if name in out]
    types = {name: _annotation(by_name[name][0] if name == selector else applicable[name]) for name in order}
    return choice, {name: out[name] for name in order}, types


def _section(section: str, choice: str | None, values: dict[str, Any], types: dict[str, str]) -> Section:
    """The typed section (its type generated from the keys' names and types, see :mod:`.resolved`)."""
    spec = tuple((name, types[name]) for name in values)
    return section_type(section, choice, spec)(*(freeze(v) for v in values.values()))


def _check_depth(raw: Mapping) -> None:
    """Refuse values nested deeper than ``_MAX_DEPTH`` (iteratively: no recursion to exhaust)."""
    stack: list[tuple[Mapping | list, str, int]] = [(raw, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise ScenarioError(
                f"{path}: arrays or tables nested more than {_MAX_DEPTH} levels deep: "
                "expected a value a scenario key takes"
            )
        items = node.items() if isinstance(node, Mapping) else enumerate(node)
        for name, child in items:
            if isinstance(child, (Mapping, list)):
                where = path if depth >= 2 else f"{path}.{name}" if path else str(name)  # the key's path
                stack.append((child, where, depth + 1))


def _check_epoch_batches(o: Section) -> None:
    if o.sampling == "epoch" and o.batch_size is None:
        raise ScenarioError(
            'optimizer.sampling = "epoch": expected optimizer.batch_size too (the rows '
            "per batch of each epoch)"
        )


def _resolve_epochs(done: SimpleNamespace) -> None:
    """Set run.steps from run.epochs (epochs x steps per epoch of the data and batch size)."""
    from ..data import dataset_spec, training_rows
    from ..sampling import steps_per_epoch

    run, o = done.run, done.optimizer
    steps, epochs = run.steps, run.epochs
    if epochs is None:
        if steps is None:
            raise ScenarioError(f"run.steps: missing required key ({Int(0, 2**62).describe('steps')})")
        return
    if steps is not None:
        raise ScenarioError(
            f"run.epochs = {epochs}: expected run.steps or run.epochs, not both (run.steps = {steps})"
        )
    if o.sampling != "epoch":
        raise ScenarioError(
            f'run.epochs = {epochs}: expected optimizer.sampling = "epoch" (an epoch is '
            f'one pass over the training rows in batches), got "{o.sampling}"'
        )
    _check_epoch_batches(o)
    try:
        rows = training_rows(dataset_spec(done.data.to_dict()))
    except (ValueError, TypeError, OSError) as exc:
        raise ScenarioError(
            f"run.epochs = {epochs}: cannot count the training rows of [data]: {' '.join(str(exc).split())}"
        ) from None
    done.run = replace(run, steps=epochs * steps_per_epoch(rows, o.batch_size))


def _cross_checks(resolved: ResolvedScenario) -> None:
    kernel_type = KERNELS.get_entry(resolved.kernel.kind)
    if kernel_type.check is not None:
        kernel_type.check(resolved)
    _check_epoch_batches(resolved.optimizer)
    check_replicas(resolved)
    s = resolved.schedule
    try:
        SCHEDULES.get_entry(s.kind).build(s.to_dict())
    except ValueError as exc:
        raise ScenarioError(f"schedule: {exc}") from None


def _validate_observers(entries: Any, done: SimpleNamespace) -> tuple[Section, ...]:
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ScenarioError(
            f"observers = {show(entries)}: expected an array of tables, written "
            "[[observers]] (got " + toml_type(entries) + ")"
        )
    out: list[Section] = []
    names: dict[str, int] = {}  # observer name -> the index of the entry that took it
    type_key = replace(_OBSERVER_COMMON[0], check=OBSERVERS.checker())
    for i, entry in enumerate(entries):
        where = f"observers[{i}]"
        if "type" not in entry:
            raise ScenarioError(f"{where}.type: missing required key ({type_key.check.describe('type')})")
        kind = type_key.parse(entry["type"], f"{where}.type")
        keys = [type_key, *_OBSERVER_COMMON[1:], *OBSERVERS[kind].options]
        _, options, types = _validate_table(entry, keys, where, "type", done)
        if options.get("name") is None:
            options["name"] = kind
        types["name"] = "str"
        if options["name"] in names:
            raise ScenarioError(
                f"{where}.name = {show(options['name'])}: already used by "
                f"observers[{names[options['name']]}]; give one of them another name"
            )
        names[options["name"]] = i
        if isinstance(options["every"], str) and done.optimizer.sampling != "epoch":
            raise ScenarioError(
                f'{where}.every = "{options["every"]}": expected optimizer.sampling = '
                f'"epoch" (epochs count its batches), got "{done.optimizer.sampling}"'
            )
        out.append(_section("observers", kind, options, types))
    return tuple(out)


def validate_scenario(raw: Mapping, overrides: Mapping[str, Any] | None = None) -> ResolvedScenario:
    """Check a parsed scenario and return it resolved (every default filled in).

    Parameters
    ----------
    raw : dict
        The parsed TOML document.
    overrides : dict, optional
        Dotted paths to values set before validation (``{"run.steps": 100}``),
        as the command line's ``--steps`` does.

    Returns
    -------
    ResolvedScenario
        One frozen section per section (``resolved.output.frame_every``), ``observers`` a
        tuple of them; optional keys left out are None (see :mod:`.resolved`).

    Raises
    ------
    ScenarioError
        One-line message naming the key path.
    """
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"scenario: expected a table of sections, got {toml_type(raw)}")
    _check_depth(raw)
    raw = dict(raw)
    for path, value in (overrides or {}).items():
        section, name = _override_path(path)
        table = raw.get(section, {})
        if not isinstance(table, Mapping):
            raise ScenarioError(
                f"{path}: [{section}] is {toml_type(table)} in the scenario; "
                "expected a table whose key a dotted override can set"
            )
        # an overridden run length replaces the file's, whichever unit the file gave it in
        other = {"run.steps": "epochs", "run.epochs": "steps"}.get(path)
        raw[section] = {**{k: v for k, v in table.items() if k != other}, name: value}
    for name in raw:
        if name not in SECTIONS:
            close = difflib.get_close_matches(name, SECTIONS, n=1)
            hint = f" (did you mean [{close[0]}]?)" if close else ""
            raise ScenarioError(f"{name}: unknown section{hint}; expected one of {', '.join(SECTIONS)}")
    _load_scenario_plugins(raw.get("run", {}))
    shorthand = raw.get("schedule")
    if isinstance(shorthand, (int, float)) and not isinstance(shorthand, bool):
        raw["schedule"] = {"lr": shorthand}
    keys = schema()
    done = SimpleNamespace()  # the sections validated so far, for derived defaults
    for section in SECTIONS[:-1]:
        table = raw.get(section, {})
        if not isinstance(table, Mapping):
            raise ScenarioError(
                f"{section} = {show(table)}: expected a table [{section}], got {toml_type(table)}"
            )
        section_keys = [k for k in keys if k.path.startswith(section + ".")]
        choice, values, types = _validate_table(table, section_keys, section, SELECTORS.get(section), done)
        setattr(done, section, _section(section, choice, values, types))
        if section == "optimizer":  # run.steps from run.epochs, before schedule.steps derives from it
            _resolve_epochs(done)
    done.observers = _validate_observers(raw.get("observers", []), done)
    resolved = ResolvedScenario(**vars(done))
    _cross_checks(resolved)
    return resolved


def _load_scenario_plugins(run: Any) -> None:
    """Import the plugins of ``run.plugins`` (and the installed ones) before the sections are checked."""
    from ..plugins import load_plugins  # it imports this package's checks

    modules = run.get("plugins", []) if isinstance(run, Mapping) else []
    try:
        modules = _modules(modules)
    except Invalid as exc:
        raise ScenarioError(f"run.plugins = {show(modules)}: {exc}") from None
    load_plugins(modules)


def _override_path(path: str) -> tuple[str, str]:
    parts = str(path).split(".")
    if len(parts) != 2 or not all(parts):
        raise ScenarioError(f'{path!r}: expected a dotted key "section.key" (such as schedule.lr)')
    return parts[0], parts[1]


def parse_override(text: str) -> tuple[str, Any]:
    """A command line's ``section.key=value`` as ``(path, value)``.

    Parameters
    ----------
    text : str
        ``section.key=value``; the value is read as a TOML value (``0.1``, ``true``,
        ``[1, 2]``, ``"a"``) and, when it is not one, taken as a string.

    Returns
    -------
    tuple
        The dotted path and the value, to pass in ``overrides`` of :func:`validate_scenario`
        (which checks both as it checks the file).

    Raises
    ------
    ScenarioError
        No ``=``, or a path that is not ``section.key``.
    """
    path, equals, value = str(text).partition("=")
    path = path.strip()
    parts = path.split(".")
    if not equals or len(parts) != 2 or not all(parts):
        raise ScenarioError(f"--set {text!r}: expected section.key=value (such as schedule.lr=0.05)")
    try:
        return path, tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return path, value.strip()


# ---------------------------------------------------------------- files
@dataclass
class Scenario:
    """A validated scenario.

    Attributes
    ----------
    resolved : ResolvedScenario
        Every key with its value or default (see :func:`validate_scenario`).
    text : str
        The TOML text as written.
    source : str
        Where it came from (a path, or ``"<default>"``).
    overrides : dict
        The dotted overrides applied on top of ``text`` (``--set``, ``--steps``, ``--threads``).
    """

    resolved: ResolvedScenario
    text: str
    source: str
    overrides: dict = field(default_factory=dict)


def parse_toml(text: str, source: str = "<string>") -> dict:
    """TOML text as a dict.

    A leading UTF-8 byte order mark (as some Windows editors write) is dropped.

    Parameters
    ----------
    text : str
    source : str
        Where the text came from, for messages.

    Raises
    ------
    ScenarioError
        One line: not valid TOML (with tomllib's reason), or nested so deeply that the
        parser runs out of recursion.
    """
    try:
        return tomllib.loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise ScenarioError(
            f"{source}: not valid TOML for a scenario: arrays or tables nested too deeply "
            f"(a scenario needs at most {_MAX_DEPTH} levels)"
        ) from None


def parse_scenario(
    text: str, source: str = "<string>", overrides: Mapping[str, Any] | None = None
) -> Scenario:
    """Parse and validate TOML text; ScenarioError (one line) on any problem (see :func:`parse_toml`)."""
    text = text.removeprefix("\ufeff")
    resolved = validate_scenario(parse_toml(text, source), overrides)
    return Scenario(resolved, text, source, dict(overrides or {}))


def load_scenario(path, overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Read, parse and validate a scenario file."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read scenario {str(path)!r}: {exc}") from None
    return parse_scenario(text, str(path), overrides)


def default_scenario_text() -> str:
    """The embedded default scenario (``particledyn/scenarios/default.toml``)."""
    return resources.files("particledyn").joinpath("scenarios/default.toml").read_text(encoding="utf-8")


def default_scenario(overrides: Mapping[str, Any] | None = None) -> Scenario:
    """The embedded default scenario, validated."""
    return parse_scenario(default_scenario_text(), "<default>", overrides)


# ---------------------------------------------------------------- docs
def _key_lines(key: Key, path: str, selector_path: str | None, width: int) -> list[str]:
    head = f"  {path} : {key.check.describe(key.name)}; {key.default_text()}"
    if key.when is not None and selector_path is not None:
        head += f"  [{selector_path} = {', '.join(key.when)}]"
    body = textwrap.wrap(key.doc, width=width - 6, initial_indent="      ", subsequent_indent="      ")
    return [head, *body]


def describe_keys(width: int = 100) -> str:
    """Every documented key, section by section, as ``particledyn keys`` prints it."""
    lines = [
        "Scenario keys (TOML). Types, ranges and defaults; [selector = values] marks keys that "
        "apply only for those values.",
        "",
    ]
    keys = schema()
    for section in SECTIONS[:-1]:
        lines.append(f"[{section}]")
        lines += textwrap.wrap(
            SECTION_DOCS[section], width=width, initial_indent="  # ", subsequent_indent="  # "
        )
        selector = SELECTORS.get(section)
        for key in (k for k in keys if k.path.startswith(section + ".")):
            lines += _key_lines(key, key.path, f"{section}.{selector}" if selector else None, width)
        lines.append("")
    lines.append("[[observers]]")
    lines += textwrap.wrap(
        SECTION_DOCS["observers"], width=width, initial_indent="  # ", subsequent_indent="  # "
    )
    common = (replace(_OBSERVER_COMMON[0], check=OBSERVERS.checker()), *_OBSERVER_COMMON[1:])
    for key in common:
        lines += _key_lines(key, f"observers.{key.path}", None, width)
    for kind, observer_type in OBSERVERS.items():
        target = f" ({observer_type.target.replace(':', '.')})" if observer_type.target else ""
        lines.append(f'  type = "{kind}"{target}: {observer_type.summary}')
        for key in observer_type.options:
            lines += _key_lines(key, f"  observers.{key.path}", None, width)
    return "\n".join(lines) + "\n"
