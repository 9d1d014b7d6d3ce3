"""``python -m strangler``: the same CLI as the ``strangler`` console script."""

import sys

from strangler.cli import main

sys.exit(main())
