"""Connection failures as one line: the driver's address prefix left out, whatever form the host has."""

from __future__ import annotations

import pytest
from rethinkdb.errors import ReqlAuthError, ReqlDriverError

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.rethinkdb import connect_failure


@pytest.mark.parametrize('host', ['localhost', '127.0.0.1', 'db1.example.net', '::1'])
def test_connect_failure_leaves_out_the_address_the_driver_puts_first(host):
    assert connect_failure(ReqlAuthError('Wrong password', host, 28015)) == 'Wrong password'
    refused = ReqlDriverError('Could not connect to %s:28015. Error: [Errno 111] Connection refused' % host)
    assert connect_failure(refused) == '[Errno 111] Connection refused'
