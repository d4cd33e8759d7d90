"""`python -m brushwork.worker [--port N] [--listen ADDR]` (what connect() starts)."""

import sys

from .commands import main

sys.exit(main())
