"""``python -m amsrm``: the same command line as ``amsrm``."""

import sys

from amsrm.cli import main

sys.exit(main())
