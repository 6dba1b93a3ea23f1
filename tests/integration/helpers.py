"""Small helpers the integration tests share: loading BigchainDB-shaped data and reading it back."""

from __future__ import annotations

from rethinkdb import RethinkDB

from tests.harness import bigchaindb_data

r = RethinkDB()


def load_bigchain(cluster, blocks: int = 40, replicas: int = 1, seed: int = 0) -> dict:
    """Create BigchainDB's schema on the cluster and load deterministic data; return counts by table."""
    with cluster.connect() as connection:
        bigchaindb_data.create_schema(r, connection, replicas=replicas)
        return bigchaindb_data.load(r, connection, bigchaindb_data.generate(blocks, seed=seed))


def table_config(cluster, table: str, db: str = 'bigchain') -> dict:
    """The table's row of rethinkdb.table_config."""
    with cluster.connect() as connection:
        return r.db('rethinkdb').table('table_config').filter({'db': db, 'name': table}).nth(0).run(connection)


def counts(cluster, tables=('bigchain', 'votes', 'backlog'), db: str = 'bigchain', node=1) -> dict:
    """Document count of each table, read through one node."""
    with cluster.connect(node) as connection:
        return dict((table, r.db(db).table(table).count().run(connection)) for table in tables)
