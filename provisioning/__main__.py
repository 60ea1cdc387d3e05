"""``python -m provisioning``: the same as ``outpost-provision``."""

import sys

from provisioning.cli import main

sys.exit(main())
