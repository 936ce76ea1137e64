"""`python -m privastead.cli.hub`: the same as the `privastead-hub` entry point."""

import sys

from privastead.cli.hub import main

sys.exit(main())
