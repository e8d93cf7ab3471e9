"""`python -m syslogkit.collector ARGS`: the same as `syslogkit collect ARGS`."""

import sys

from syslogkit.cli_collect import run_collect_command

sys.exit(run_collect_command(sys.argv[1:]))
