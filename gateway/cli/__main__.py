"""`python -m gateway.cli ...`: the `nimbus` command without its console script."""

from __future__ import annotations

import sys

from gateway.cli.commands import main

if __name__ == "__main__":
    sys.exit(main())
