"""Helpers the integration tests share: BigchainDB-shaped data, clusters set up for backups, and what the tests
assert of them (healthy, released, untouched)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from rethinkdb import RethinkDB
from rethinkdb.errors import ReqlError

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import set_catalog
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository_local import LocalRepository
from ansible_collections.bigchaindb.rethinkdb.tests.harness import bigchaindb_data
from ansible_collections.bigchaindb.rethinkdb.tests.harness.cluster import Cluster
from ansible_collections.bigchaindb.rethinkdb.tests.integration.conftest import Ansible

r = RethinkDB()
NODES = ('node1', 'node2', 'node3')
TABLES = ('backlog', 'bigchain', 'votes')
BACKUP = 'bigchaindb.rethinkdb.backup'
RESTORE = 'bigchaindb.rethinkdb.restore'


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


def missing_tools(*tools) -> list:
    return [tool for tool in tools if shutil.which(tool) is None]


def needs(*tools):
    """Skip unless root with these commands installed."""
    if os.geteuid() != 0:
        return pytest.mark.skip(reason='snapshot tests need root (mounts, loop devices, fsfreeze)')
    missing = missing_tools('mount', 'umount', *tools)
    return pytest.mark.skipif(bool(missing), reason='snapshot tests need %s' % ', '.join(missing))


def close_quietly(connection) -> None:
    """Close a connection whose server may be gone; a broken connection has nothing left to close."""
    with contextlib.suppress(ReqlError, OSError):
        connection.close(noreply_wait=False)


def inventory_with(cluster: Cluster, path: Path, group_vars: dict, host_vars: dict | None = None) -> Path:
    """The cluster's inventory with variables for its group and, by host, for its hosts."""
    inventory = cluster.inventory()
    group = inventory['all']['children']['rethinkdb']
    group.setdefault('vars', {}).update(group_vars)
    for host, variables in (host_vars or {}).items():
        group['hosts'].setdefault(host, {}).update(variables)
    path.write_text(yaml.safe_dump(inventory, default_flow_style=False, sort_keys=False))
    return path


class Setup:
    """A cluster loaded with BigchainDB data (3 replicas), its inventory and ansible-playbook, and where its backups go."""

    def __init__(self, cluster: Cluster, workdir: Path, host_vars: dict | None = None, shared_path: bool = False):
        """shared_path: the sets in a repository of kind path (as every node mounted one directory), not on the controller."""
        self.cluster = cluster
        self.workdir = workdir
        self.backups = workdir / 'backups'
        self.host_vars = host_vars or {}
        self.node_dirs = workdir / 'node-dirs'
        repository = ('path:%s' if shared_path else '%s') % self.backups
        self.group_vars = dict(rethinkdb_backup_repository=repository, rethinkdb_backup_node_dir=str(self.node_dirs))
        self.ansible = Ansible(workdir, inventory_with(cluster, workdir / 'inventory.yml', self.group_vars, self.host_vars))
        load_bigchain(cluster, blocks=20, replicas=3)

    def other_inventory(self, name: str, host_vars: dict, group_vars: dict | None = None) -> Ansible:
        """ansible-playbook in a directory of its own, against the inventory with these host variables (and
        group variables) changed or added."""
        workdir = self.workdir / name
        workdir.mkdir()
        changed = dict(self.host_vars)
        for host, variables in host_vars.items():
            changed[host] = dict(changed.get(host, {}), **variables)
        return Ansible(workdir, inventory_with(self.cluster, workdir / 'inventory.yml', dict(self.group_vars, **(group_vars or {})), changed))

    def data_dirs(self) -> list:
        return [node.data_dir for node in self.cluster.nodes]

    def pids(self) -> list:
        return [node.pid() for node in self.cluster.nodes]

    def sets(self) -> list:
        """The cluster's backup sets, newest first, as the catalog lists them."""
        return set_catalog.list_sets(LocalRepository(str(self.backups)), 'rethinkdb')


@contextlib.contextmanager
def started(root: Path, data_dirs: dict | None = None):
    """A 3-node cluster (data directories where given), always torn down before its filesystems go."""
    cluster = Cluster(root / 'cluster', size=3, data_dirs=data_dirs)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.teardown()


def documents(cluster: Cluster, table: str) -> dict:
    """Every document of a bigchain table by id."""
    with cluster.connect() as connection:
        return dict((document['id'], document) for document in r.db('bigchain').table(table).run(connection))


def damage(cluster: Cluster) -> None:
    """Delete some blocks and drop the votes."""
    with cluster.connect() as connection:
        r.db('bigchain').table('bigchain').limit(7).delete().run(connection)
        r.db('bigchain').table_drop('votes').run(connection)


def assert_healthy(cluster: Cluster) -> None:
    """All three servers connected and every table with all its replicas ready, as it was backed up (3 replicas)."""
    with cluster.connect() as connection:
        servers = list(r.db('rethinkdb').table('server_status').run(connection))
        statuses = list(r.db('rethinkdb').table('table_status').filter({'db': 'bigchain'}).run(connection))
        configs = list(r.db('rethinkdb').table('table_config').filter({'db': 'bigchain'}).run(connection))
    assert sorted(server['name'] for server in servers) == list(NODES)
    assert sorted(status['name'] for status in statuses) == list(TABLES)
    assert all(status['status']['all_replicas_ready'] for status in statuses), statuses
    assert all(len(config['shards'][0]['replicas']) == 3 for config in configs), configs


def journal(data_dir: Path) -> dict:
    """A node's restore journal."""
    return json.loads(Path('%s.restore-journal.json' % data_dir).read_text())


def assert_released(setup: Setup, *staging_dirs: Path) -> None:
    """No lock, snapshot or copy left beside any data directory, in the staging directories or the nodes'
    archive directories: nothing of a backup outlives its run."""
    leftovers = []
    for data_dir in setup.data_dirs():
        leftovers += [path for path in data_dir.parent.iterdir() if '.snapshot-' in path.name or path.name.endswith('.backup-lock')]
    for directory in staging_dirs:
        leftovers += list(directory.iterdir())
    leftovers += list(setup.node_dirs.glob('*/*'))
    assert leftovers == []


def state_of(setup: Setup) -> tuple:
    """The servers' pids and what lies beside each data directory, to show that a refused run changed neither."""
    beside = sorted(path.name for data_dir in setup.data_dirs() for path in data_dir.parent.iterdir()
                    if path.name.startswith(data_dir.name + '.'))
    return setup.pids(), beside


def assert_untouched(setup: Setup, before: tuple) -> None:
    """The servers never stopped and no data directory was staged, moved or replaced."""
    assert state_of(setup) == before
    assert_healthy(setup.cluster)


def failed_set(setup: Setup) -> dict:
    """The newest set, which the catalog must list as failed."""
    newest = setup.sets()[0]
    assert (newest['state'], newest['complete']) == ('failed', False)
    return newest


def wait_ready(cluster: Cluster) -> None:
    # A server that a watchdog or a role started may run before it listens (a real rethinkdb takes seconds).
    cluster.wait_connected()
    with cluster.connect() as connection:
        r.db('bigchain').wait(wait_for='all_replicas_ready', timeout=120).run(connection)
