"""`python -m tinyllm ...` (hand-written): see tinyllm/cli.py."""
import sys

from tinyllm.cli import main

sys.exit(main())
