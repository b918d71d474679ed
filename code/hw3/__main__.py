"""`python -m hw3`: the command line (hw3.cli)."""

import sys

from hw3.cli import main

sys.exit(main())
