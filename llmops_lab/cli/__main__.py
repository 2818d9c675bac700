"""``python -m llmops_lab.cli``: how the scheduler starts one job execution (``jobs run NAME``)."""
import sys

from llmops_lab.cli import main

sys.exit(main())
