"""`python -m sdq`: the `sdq` command."""

import sys

from sdq.cli import main

sys.exit(main())
