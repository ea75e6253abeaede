"""``python -m analyzer``: see ``analyzer.cli``."""

import sys

from analyzer.cli import main

sys.exit(main())
