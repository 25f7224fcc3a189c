"""``python -m earshot``: the ``earshot`` command (:mod:`earshot.cli`)."""

import sys

from earshot.cli import main

sys.exit(main())
