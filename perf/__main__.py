"""``python -m perf``: see the package docstring."""

import sys

from perf.cli import main

sys.exit(main())
