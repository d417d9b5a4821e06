"""`python -m bot`: the same as `doorways-bot`."""

import sys

from bot.launcher import main

if __name__ == "__main__":  # the worker is spawned: its process re-imports this module
    sys.exit(main())
