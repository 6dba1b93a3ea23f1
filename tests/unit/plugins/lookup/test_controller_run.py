"""Unit tests of the controller_run lookup: the current controller run, as a later run can test it."""

from __future__ import annotations

import os
import socket

from ansible_collections.bigchaindb.rethinkdb.plugins.lookup.controller_run import LookupModule
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.controller_run import run_state


def test_the_lookup_describes_this_run_and_it_is_alive():
    [run] = LookupModule().run([], variables={})

    assert (run['host'], run['pid']) == (socket.gethostname(), os.getpid())
    assert run_state(run) == 'alive'
