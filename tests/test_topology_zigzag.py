"""Zigzag barcodes through a run's frames."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from particledyn.topology import betti_numbers, frame_simplices, zigzag_barcode


def ring(n, arc=1.0, center=(0.0, 0.0)):
    """n points evenly spread on the fraction ``arc`` of the unit circle (1.0: closed)."""
    t = 2 * np.pi * arc * np.arange(n) / n
    return np.c_[center[0] + np.cos(t), center[1] + np.sin(t)]


METHODS = pytest.mark.parametrize("method", ["fast", "standard"])


def bars(barcode, dim):
    return sorted((b, d) for k, b, d in barcode if k == dim)


@METHODS
def test_circle_torn_into_an_arc_ends_its_h1_bar_at_that_frame(method):
    n, tear = 40, 4
    frames = [ring(n) if t < tear else ring(n, arc=0.8) for t in range(7)]
    code = zigzag_barcode(frames, scale=0.3, max_dim=1, method=method)
    assert bars(code, 1) == [(0.0, float(tear))]
    assert bars(code, 0) == [(0.0, np.inf)]


@METHODS
def test_loop_closing_mid_run_is_born_in_the_union_before_that_frame(method):
    n, close = 40, 3
    frames = [ring(n, arc=0.8) if t < close else ring(n) for t in range(6)]
    code = zigzag_barcode(frames, scale=0.3, max_dim=1, method=method)
    # frame close-1 (arc) and frame close (circle): the loop first exists in their union.
    assert bars(code, 1) == [(close - 0.5, np.inf)]


@METHODS
def test_two_circles_one_tears(method):
    n = 40
    frames = [np.r_[ring(n), ring(n, arc=1.0 if t < 2 else 0.7, center=(4.0, 0.0))] for t in range(5)]
    code = zigzag_barcode(frames, scale=0.3, max_dim=1, method=method)
    assert bars(code, 1) == [(0.0, 2.0), (0.0, np.inf)]
    assert bars(code, 0) == [(0.0, np.inf), (0.0, np.inf)]


@METHODS
def test_static_frames_give_the_ordinary_betti_numbers(method):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    X = x / np.linalg.norm(x, axis=1, keepdims=True)
    code = zigzag_barcode([X, X, X], scale=0.8, max_dim=2, method=method)
    b = betti_numbers(X, scale=0.8, max_dim=2).betti[0]
    for k in range(3):
        assert bars(code, k) == [(0.0, np.inf)] * b[k]


@METHODS
def test_components_merging_and_splitting(method):
    # Two far clusters that come together at frame 2 and split again at frame 4.
    a = np.array([[0.0, 0.0], [0.1, 0.0]])
    frames = []
    for t in range(6):
        gap = 0.2 if t in (2, 3) else 5.0
        frames.append(np.r_[a, a + [gap + 0.1, 0.0]])
    code = zigzag_barcode(frames, scale=0.25, max_dim=0, method=method)
    # They merge in the union of frames 1 and 2 (zigzag time 3 -> 1.5): the second
    # component lives in frames 0..1; the split is seen in frame 4 itself.
    assert bars(code, 0) == [(0.0, 1.5), (0.0, np.inf), (4.0, np.inf)]


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    n=st.integers(3, 20),
    n_frames=st.integers(1, 7),
    dim=st.integers(2, 3),
    max_dim=st.integers(0, 2),
)
def test_fast_zigzag_equals_the_standard_algorithm(seed, n, n_frames, dim, max_dim):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim))
    frames = []
    for _ in range(n_frames):
        X = X + rng.normal(scale=0.3, size=X.shape)
        frames.append(X.copy())
    fast = zigzag_barcode(frames, 0.9, max_dim, method="fast")
    standard = zigzag_barcode(frames, 0.9, max_dim, method="standard")
    assert np.array_equal(fast, standard)


def test_frame_simplices_include_edges_of_length_exactly_r():
    X = np.array([[0.0, 0.0], [0.5, 0.0], [2.0, 0.0]])
    assert (0, 1) in frame_simplices(X, 0.5, 1)
    assert (1, 2) not in frame_simplices(X, 0.5, 1)


def test_bad_frames():
    with pytest.raises(ValueError):
        zigzag_barcode([np.zeros((3, 2)), np.zeros((4, 2))], 0.1)
    with pytest.raises(ValueError):
        zigzag_barcode([], 0.1)
    with pytest.raises(ValueError):
        zigzag_barcode([np.zeros((3, 2))], -1.0)
    with pytest.raises(ValueError):
        zigzag_barcode([np.zeros((3, 2))], 0.1, method="slow")
