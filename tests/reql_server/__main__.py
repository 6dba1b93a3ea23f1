"""`python -m tests.reql_server [serve] --directory ... --driver-port ...`: run one test server."""

import sys

from .cli import main

sys.exit(main())
