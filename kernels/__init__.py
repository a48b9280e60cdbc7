"""Built-in update kernels (installed as ``particledyn.kernels``).

Each kernel has a plain-numpy reference beside it (``*_reference.py``) that the
fast numba version is tested against.
"""

from .multi_layer import MultiLayerNet
from .two_layer import TwoLayerNet

__all__ = ["MultiLayerNet", "TwoLayerNet"]
