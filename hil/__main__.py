"""``python -m hil run ...``: see :mod:`hil.cli`."""

import sys

from hil.cli import main

sys.exit(main())
