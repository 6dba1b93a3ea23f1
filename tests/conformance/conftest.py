"""Fixtures of the conformance suite: one shared three-server cluster (the ReQL test server, or real RethinkDB
when RETHINKDB_BIN names a binary), driver connections, and a fresh database per test."""

from __future__ import annotations

import uuid

import pytest
from rethinkdb import RethinkDB

from ansible_collections.bigchaindb.rethinkdb.tests.harness.cluster import Cluster

SERVER_TAGS = {'node1': ['alpha'], 'node2': ['beta'], 'node3': ['beta']}
# node1 runs with a fixed cache size, node2 and node3 with the default ('auto').
CACHE_SIZES = {'node1': 256}


@pytest.fixture(scope='session')
def r():
    """The driver's query builder."""
    return RethinkDB()


@pytest.fixture(scope='session')
def cluster(tmp_path_factory):
    """Three servers tagged alpha / beta / beta (node1 with a 256 MB cache), shared by the suite (tests put back
    what they stop)."""
    with Cluster(tmp_path_factory.mktemp('conformance'), size=3, tags=SERVER_TAGS, cache_sizes=CACHE_SIZES) as shared:
        yield shared


@pytest.fixture
def conn(cluster):
    """A connection to node1."""
    connection = cluster.connect('node1')
    yield connection
    connection.close()


@pytest.fixture
def db(r, conn):
    """A database of its own for the test, dropped afterwards."""
    name = 'conformance_%s' % uuid.uuid4().hex[:8]
    r.db_create(name).run(conn)
    yield name
    r.db_drop(name).run(conn)
