"""``python3 -m ipcbench_report`` (what scripts/report.sh runs)."""

import sys

from ipcbench_report.cli import main

sys.exit(main())
