"""`python -m regdrop_fast` is the `regdrop-fast` command."""

import sys

from .cli import main

sys.exit(main())
