"""``python -m hub.config --write-schema [PATH]``: write the config JSON Schema."""

import sys

from hub.config.schema import main

sys.exit(main())
