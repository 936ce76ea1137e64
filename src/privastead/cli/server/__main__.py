"""``python -m privastead.cli.server``: same as the ``privastead-server`` script."""

from __future__ import annotations

import sys

from privastead.cli.server import main

sys.exit(main())
