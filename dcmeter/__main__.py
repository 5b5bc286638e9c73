"""`python -m dcmeter`."""

import sys

from dcmeter.cli.main import main

sys.exit(main())
