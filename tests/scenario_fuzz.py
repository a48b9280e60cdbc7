"""Material for fuzzing scenarios: random TOML values, mutations of a parsed scenario, a TOML writer,
and the adversarial corpus (each entry a scenario text that must give a one-line error)."""

import datetime
import json
import math

from hypothesis import strategies as st

TOML_VALUES = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True),
    st.booleans(),
    st.text(max_size=12),
    st.datetimes(min_value=datetime.datetime(1900, 1, 1)),
    st.just([]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def mutate(tree, draw, values=TOML_VALUES, leaf=False):
    """Replace one random node of a nested dict/list (with ``leaf``, a scalar) with a random TOML value."""
    node = tree
    while True:
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        if not children:
            return
        slot, child = draw(st.sampled_from(children))
        if isinstance(child, (dict, list)) and child and (leaf or draw(st.booleans())):
            node = child
            continue
        node[slot] = draw(values)
        return


def _string(text: str) -> str:
    """A TOML basic string (JSON escapes, plus the control characters JSON leaves raw)."""
    return "".join(c if c != "\x7f" else "\\u007f" for c in json.dumps(text))


def toml_value(value) -> str:
    """One TOML value, inline."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, (int, datetime.datetime)):
        return value.isoformat() if isinstance(value, datetime.datetime) else str(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_dumps(raw: dict) -> str:
    """A scenario dict as TOML text: [section] tables, [[observers]] and any other top-level value."""
    lines = []
    for name, value in raw.items():
        if not isinstance(value, (dict, list)) or (isinstance(value, list) and name != "observers"):
            lines.insert(0, f"{_string(name)} = {toml_value(value)}")
    for name, value in raw.items():
        entries = (
            value
            if name == "observers" and isinstance(value, list)
            else [value]
            if isinstance(value, dict)
            else []
        )
        for entry in entries:
            if not isinstance(entry, dict):
                lines.insert(0, f"{_string(name)} = {toml_value(value)}")
                break
            lines.append(f"[[{name}]]" if name == "observers" else f"[{_string(name)}]")
            lines += [f"{_string(k)} = {toml_value(v)}" for k, v in entry.items()]
    return "\n".join(lines) + "\n"


TINY = """\
[run]
name = "tiny"
steps = 3
threads = 1
[data]
kind = "teacher_student"
d = 1
n = 40
[init]
shape = "genus_region"
n = 12
[schedule]
lr = 0.01
[[observers]]
type = "loss"
"""

_MULTI = TINY.replace("[init]", '[kernel]\nkind = "multi_layer"\nlayers = [5, 5]\n[init]')

#: name -> (scenario text, a part of the expected error): the adversarial corpus of issue 15.
CORPUS = {
    "deep_array": (
        "x = " + "[" * 5000 + "]" * 5000 + "\n" + TINY,
        "not valid TOML for a scenario: arrays or tables nested too deeply",
    ),
    "deep_inline_table": (
        TINY.replace("[run]\n", "[run]\nq = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n"),
        "not valid TOML for a scenario: arrays or tables nested too deeply",
    ),
    "deep_value": (
        TINY.replace("[init]\n", "[init]\nrotation = " + "[" * 40 + "]" * 40 + "\n"),
        "error: init.rotation: arrays or tables nested more than 16 levels deep",
    ),
    "deep_part": (
        TINY.replace(
            'shape = "genus_region"\nn = 12',
            'shape = "union"\nparts = [{shape = "circle", n = 3, x = ' + "[" * 30 + "]" * 30 + "}]",
        ),
        "error: init.parts: arrays or tables nested more than 16 levels deep",
    ),
    "multi_layer_count": (_MULTI, "error: init.n = 12: expected the sum of kernel.layers = 10"),
    "multi_layer_union": (
        _MULTI.replace(
            'shape = "genus_region"\nn = 12', 'shape = "union"\nparts = [{shape = "circle", n = 4}]'
        ),
        "error: init: 4 particles: expected 10 (groups (5, 5))",
    ),
    "multi_layer_zero_block": (
        _MULTI.replace("[5, 5]", "[12, 0]"),
        "error: kernel.layers = [12, 0]: expected a non-empty array of block sizes",
    ),
    "sharpness_k": (
        TINY.replace("n = 12", "n = 3") + '[[observers]]\ntype = "sharpness"\nk = 7\n',
        "error: observers[1] (sharpness): k=7: expected an integer number of eigenpairs in 1..6",
    ),
    "sharpness_k_float": (
        TINY + '[[observers]]\ntype = "sharpness"\nk = 2.5\n',
        "error: observers[1].k = 2.5: expected an integer",
    ),
    "bom_then_bad_key": (
        "\ufeff" + TINY.replace("steps = 3", "stepz = 3"),
        "error: run.stepz: unknown key (did you mean steps?)",
    ),
    "nul_byte": (
        TINY.replace('name = "tiny"', 'name = "ti\x00ny"'),
        "not valid TOML: Illegal character '\\x00'",
    ),
    "not_utf8": (TINY.replace('"tiny"', '"ti\udcffny"'), "error: cannot read scenario"),
    "huge_steps": (
        TINY.replace("steps = 3", "steps = 99999999999999999999"),
        "error: run.steps = 99999999999999999999: expected an integer steps <= ",
    ),
    "nan_lr": (TINY.replace("lr = 0.01", "lr = nan"), "error: schedule.lr = nan: expected a number lr > 0"),
    "date_as_n": (
        TINY.replace("n = 12", "n = 1979-05-27"),
        "error: init.n = 1979-05-27: expected an integer",
    ),
    "subset_too_large": (
        TINY + "[output]\nsubset = 13\n",
        "error: output.subset = 13: expected a count <= N = 12",
    ),
}


def write_corpus_file(directory, name: str, text: str):
    """Write a corpus entry to ``directory/name.toml`` (lone surrogates become invalid UTF-8 bytes)."""
    path = directory / f"{name}.toml"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    return path
