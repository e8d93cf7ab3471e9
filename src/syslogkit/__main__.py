"""`python -m syslogkit`: the same as the `syslogkit` command."""

import sys

from syslogkit.cli.main import main

sys.exit(main())
