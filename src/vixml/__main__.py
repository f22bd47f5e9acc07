"""``python -m vixml``: the command line, also what ``torchrun --nproc_per_node N -m vixml train ...`` runs."""

from __future__ import annotations

import sys

from vixml.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
