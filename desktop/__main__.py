"""``python -m desktop``: the same as ``kling-preflight-gui``."""

import sys

from .app import main

sys.exit(main())
