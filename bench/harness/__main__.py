"""python3 -m harness (with bench/ on sys.path): the same as scripts/bench."""

import sys

from .cli import main

sys.exit(main())
