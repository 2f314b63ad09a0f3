"""`python -m service …` = `session-syncd service …`, for testing before the CLI wires it in."""

import os
import sys

from service.commands import main

raise SystemExit(main(sys.argv[1:], os.environ))
