"""`python -m hw3`: the command line (hw3.cli)."""

import sys

try:  # importing torch takes seconds: Ctrl-C then is one line too, as everywhere in hw3.cli
    from hw3.cli import main
except KeyboardInterrupt:
    print("interrupted: nothing was started", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
