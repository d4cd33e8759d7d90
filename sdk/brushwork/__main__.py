"""``python -m brushwork`` is the ``brushwork`` command."""

import sys

from .cli import main

sys.exit(main())
