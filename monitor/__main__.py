"""`python -m monitor` is the `govwatch` command."""
import sys

from monitor.cli import main

sys.exit(main())
