"""`python -m ansible_collections.bigchaindb.rethinkdb.tests.reql_server [serve] --directory ... --driver-port ...`: run one
test server (tests/reql_server/rethinkdb runs it without the collection on the path)."""

import sys

from .cli import main

sys.exit(main())
