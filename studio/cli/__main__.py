"""`python -m studio.cli`: the same as the `studio` command."""

import sys

from studio.cli.commands import main

sys.exit(main())
