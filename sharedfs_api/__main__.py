"""`python -m sharedfs_api`: the same as the sharedfs-api command."""

import sys

from .cli import main

sys.exit(main())
