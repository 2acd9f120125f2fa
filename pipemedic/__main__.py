"""Allow ``python -m pipemedic``."""

import sys

from pipemedic.cli import main

sys.exit(main())
