"""`python -m sharedfs_agent`: the same as the sharedfs-agent command."""

import sys

from .cli import main

sys.exit(main())
