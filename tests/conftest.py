"""Shared pytest fixtures. Keep them generic: any test module may use them."""

import numba
import numpy as np
import pytest


@pytest.fixture
def rng():
    """A fresh, fixed-seed numpy generator per test."""
    return np.random.default_rng(20240601)


@pytest.fixture(scope="session")
def teacher_student_small():
    """The paper's teacher-student regression data (d = 2), 300 samples, 210 for training."""
    from particledyn.data import teacher_student

    return teacher_student(2, n=300, seed=0)


@pytest.fixture
def numba_threads():
    """``numba_threads(k)`` sets the numba thread count; the original count is restored after the test."""
    original = numba.get_num_threads()
    yield numba.set_num_threads
    numba.set_num_threads(original)
