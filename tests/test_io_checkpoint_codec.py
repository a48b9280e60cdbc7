"""Checkpoint encoding: every supported value survives a round trip, unsupported ones are named."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from particledyn.io import decode_checkpoint, encode_checkpoint

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**130), max_value=2**130),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.binary(max_size=5),
    hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float64, np.int64, np.bool_]),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
    ),
    st.sampled_from([np.float32(1.5), np.int16(-3), np.uint64(2**63)]),
)
trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.tuples(children, children),
        st.dictionaries(
            st.text(min_size=1, max_size=4).filter(lambda k: not k.startswith("__pd_")), children, max_size=3
        ),
    ),
    max_leaves=10,
)


def assert_same(a, b):
    assert type(a) is type(b)
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b and (not isinstance(a, np.generic) or a.dtype == b.dtype)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=4).filter(lambda k: not k.startswith("__pd_")), trees, max_size=4
    )
)
def test_round_trip(tree):
    assert_same(decode_checkpoint(encode_checkpoint(tree)), tree)


def test_rng_state_round_trip_restores_the_stream():
    rng = np.random.default_rng(5)
    rng.normal(size=3)
    state = decode_checkpoint(encode_checkpoint({"rng": rng.bit_generator.state}))["rng"]
    other = np.random.default_rng()
    other.bit_generator.state = state
    np.testing.assert_array_equal(other.normal(size=4), rng.normal(size=4))


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"x": object()}, r"checkpoint\['x'\]: cannot store a object"),
        ({"x": np.array([None])}, r"checkpoint\['x'\]: object arrays"),
        ({1: 2}, "key 1"),
        ({"__pd_array__": 1}, "__pd_"),
    ],
)
def test_unsupported_values_are_named(bad, message):
    with pytest.raises(TypeError, match=message):
        encode_checkpoint(bad)
