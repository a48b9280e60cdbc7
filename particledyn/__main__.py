"""``python -m particledyn``: the ``particledyn`` command."""

import sys

from .cli import main

sys.exit(main())
