"""`python -m privastead.cli.app`: the same as the `privastead-app` entry point."""

import sys

from privastead.cli.app import main

sys.exit(main())
