"""`python -m syslogkit`: the same as the `syslogkit` command."""

import sys

from syslogkit.cli import main

sys.exit(main())
