"""`python -m flower_assets.cli`: the flower-assets command."""

import sys

from flower_assets.cli import main

sys.exit(main())
