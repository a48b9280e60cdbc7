"""Checkpoints as one self-describing byte string (no pickle).

A checkpoint is a mapping from str to numpy arrays, numpy or Python scalars,
strings, bytes, None, and nested dicts, lists or tuples of those (an RNG state
with 128-bit integers included). :func:`encode_checkpoint` writes it as an
``.npz`` archive: every array as its own member, and the tree with array
references as JSON in the member ``__tree__``. The bytes go into a resizable
``uint8`` dataset, which SWMR allows to be rewritten at any time.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

_TREE = "__tree__"
_MARK = "__pd_"  # prefix of the markers below; user keys may not start with it
_ARRAY, _SCALAR, _TUPLE, _BYTES = "__pd_array__", "__pd_scalar__", "__pd_tuple__", "__pd_bytes__"


def encode_checkpoint(checkpoint: Mapping[str, Any]) -> bytes:
    """Serialise ``checkpoint`` to bytes; raise TypeError on a value it cannot store."""
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f"checkpoint: expected a mapping from str, got {type(checkpoint).__name__}")
    arrays: dict[str, np.ndarray] = {}

    def ref(arr: np.ndarray, where: str) -> str:
        if arr.dtype.hasobject:
            raise TypeError(
                f"checkpoint{where}: object arrays cannot be stored; expected a numeric, bool or string array"
            )
        name = f"a{len(arrays)}"
        arrays[name] = arr
        return name

    def walk(value: Any, where: str) -> Any:
        if isinstance(value, Mapping):
            out = {}
            for key, item in value.items():
                if not isinstance(key, str) or key.startswith(_MARK):
                    raise TypeError(
                        f"checkpoint{where}: key {key!r}; expected a str not starting with {_MARK!r}"
                    )
                out[key] = walk(item, f"{where}[{key!r}]")
            return out
        if isinstance(value, np.ndarray):
            return {_ARRAY: ref(value, where)}
        if isinstance(value, np.generic):
            return {_SCALAR: ref(np.asarray(value), where)}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, (bytes, bytearray)):
            return {_BYTES: ref(np.frombuffer(bytes(value), dtype=np.uint8), where)}
        if isinstance(value, tuple):
            return {_TUPLE: [walk(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [walk(v, f"{where}[{i}]") for i, v in enumerate(value)]
        raise TypeError(
            f"checkpoint{where}: cannot store a {type(value).__name__}; expected "
            "arrays, scalars, str, bytes, None, or dicts/lists/tuples of those"
        )

    tree = walk(checkpoint, "")
    arrays[_TREE] = np.frombuffer(json.dumps(tree).encode("utf-8"), dtype=np.uint8)
    buffer = io.BytesIO()
    # numpy's stub types savez's **kwds as if a key could be its ``allow_pickle`` flag; the keys
    # here are only "a<i>" and the tree's name
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def decode_checkpoint(blob: bytes) -> dict:
    """Inverse of :func:`encode_checkpoint`."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    tree = json.loads(arrays.pop(_TREE).tobytes().decode("utf-8"))

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if _ARRAY in node:
                return arrays[node[_ARRAY]]
            if _SCALAR in node:
                return arrays[node[_SCALAR]][()]
            if _BYTES in node:
                return arrays[node[_BYTES]].tobytes()
            if _TUPLE in node:
                return tuple(walk(v) for v in node[_TUPLE])
            return {key: walk(item) for key, item in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(tree)
