"""`python -m dcmeter`."""

import sys

from dcmeter.cli import main

sys.exit(main())
