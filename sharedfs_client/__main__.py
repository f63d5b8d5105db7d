"""`python -m sharedfs_client`: the `sharedfs` command."""

import sys

from .cli import main

sys.exit(main())
