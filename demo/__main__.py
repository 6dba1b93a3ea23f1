"""`make demo`: the collection at work on a local 3-node cluster.

Starts three RethinkDB servers on loopback (the ReQL test server, or real ones when RETHINKDB_BIN names a
`rethinkdb` binary), loads BigchainDB-shaped data, and runs the collection's playbooks against a 3-host
inventory with real `ansible-playbook`: replication, a logical backup and restore, a coordinated snapshot
backup and whole-cluster restore (btrfs on a loop device when run as root, the `stopped` backend
otherwise), each after damaging the data, with the cluster's facts before and after. Everything lives under
.build/demo/; the servers are stopped at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from rethinkdb import RethinkDB

from ansible_collections.bigchaindb.rethinkdb.tests.harness import bigchaindb_data, loopfs, stop_server
from ansible_collections.bigchaindb.rethinkdb.tests.harness.cluster import Cluster, server_binary

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / '.build' / 'demo'
BLOCKS = 300


def banner(text: str) -> None:
    """A heading between the steps, so the output reads as a story."""
    print('\n' + '=' * 100 + '\n== ' + text + '\n' + '=' * 100, flush=True)


def stop_leftovers() -> None:
    """Stop the servers of an earlier demo that did not get to clean up, unmount its filesystem, remove its files."""
    for pid_file in sorted((ROOT / 'cluster' / 'run').glob('*.pid')):
        stop_server.main([str(pid_file), '30'])
    if os.path.ismount(ROOT / 'btrfs'):
        loopfs.unmount(ROOT / 'btrfs')
    shutil.rmtree(ROOT, ignore_errors=True)


@contextlib.contextmanager
def data_directories(names: list):
    """Where the nodes keep their data, and the snapshot backend that suits it: btrfs subvolumes on a loop
    device when this runs as root, else plain directories (the `stopped` backend)."""
    why_not = loopfs.unavailable('btrfs')
    if why_not:
        print('btrfs on a loop device %s: the snapshot demo uses the stopped backend' % why_not)
        yield {}, 'stopped'
        return
    with loopfs.loop_filesystem(ROOT / 'btrfs', 'btrfs', 1024) as mountpoint:
        print('data directories on btrfs subvolumes of a loop device mounted at %s' % os.path.relpath(mountpoint, REPO))
        yield loopfs.btrfs_subvolumes(mountpoint, names), 'btrfs'


def write_inventory(cluster: Cluster) -> Path:
    """The harness's inventory plus where backups go."""
    inventory = cluster.inventory()
    group = inventory['all']['children']['rethinkdb']
    group.setdefault('vars', {})['rethinkdb_backup_root'] = str(ROOT / 'backups')
    path = ROOT / 'inventory.yml'
    path.write_text(yaml.safe_dump(inventory, default_flow_style=False, sort_keys=False))
    return path


def playbook(inventory: Path, name: str, *extra_args: str) -> None:
    """Run one of the collection's playbooks as a user would; stop the demo if it fails."""
    argv = [str(Path(sys.executable).parent / 'ansible-playbook'), '-i', str(inventory), name] + list(extra_args)
    print('$ ' + ' '.join(['ansible-playbook', '-i', os.path.relpath(inventory, REPO), name] + list(extra_args)), flush=True)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / '.build' / 'collections'), ANSIBLE_CALLBACK_RESULT_FORMAT='yaml',
               ANSIBLE_DISPLAY_SKIPPED_HOSTS='false', ANSIBLE_LOCAL_TEMP=str(ROOT / 'ansible-tmp'))
    completed = subprocess.run(argv, env=env, cwd=ROOT, check=False)
    if completed.returncode:
        sys.exit('demo: %s failed (exit %d); see its output above' % (name, completed.returncode))


def damage(cluster: Cluster, what: str) -> None:
    """Break the data the way an accident would, and say so."""
    r = RethinkDB()
    with cluster.connect() as connection:
        if what == 'drop votes':
            r.db('bigchain').table_drop('votes').run(connection)
        else:
            r.db('bigchain').table('bigchain').limit(100).delete().run(connection)
    print('damage done: %s' % what)


def run_demo(cluster: Cluster, backend: str) -> None:
    """The story: replicate, back up, break, restore, by both methods."""
    r = RethinkDB()
    with cluster.connect() as connection:
        bigchaindb_data.create_schema(r, connection)
        loaded = bigchaindb_data.load(r, connection, bigchaindb_data.generate(BLOCKS))
    print('loaded BigchainDB-shaped data: %s' % ', '.join('bigchain.%s %d documents' % item for item in sorted(loaded.items())))
    inventory = write_inventory(cluster)

    banner('Replication as live backup: three replicas of every table (bigchaindb set-replicas 3)')
    playbook(inventory, 'bigchaindb.rethinkdb.replicas', '-e', 'replicas=3')
    banner("The cluster's facts")
    playbook(inventory, 'bigchaindb.rethinkdb.verify')

    banner('Logical backup: rethinkdb dump of bigchain.bigchain and bigchain.votes into a backup set')
    playbook(inventory, 'bigchaindb.rethinkdb.backup')
    banner('An accident: the votes table is dropped; restore it from the newest set')
    damage(cluster, 'drop votes')
    playbook(inventory, 'bigchaindb.rethinkdb.restore', '-e', '{"restore_tables": ["bigchain.votes"]}')

    banner('Coordinated file-level backup: every node\'s data directory at one instant (%s)' % backend)
    playbook(inventory, 'bigchaindb.rethinkdb.backup', '-e', 'method=snapshot', '-e', 'backend=%s' % backend)
    banner('An accident: 100 blocks deleted; restore the whole cluster from the snapshot set')
    damage(cluster, 'delete 100 blocks')
    playbook(inventory, 'bigchaindb.rethinkdb.restore', '-e', "set=[?method=='snapshot']")

    banner("The cluster's facts after both restores, the backup catalogue, and a restore rehearsal of the newest set in a "
           "scratch cluster, with the BigchainDB chain check's report")
    rehearsal = dict(rethinkdb_binary=server_binary(), rethinkdb_rehearsal_dir=str(ROOT / 'rehearsals'),
                     rethinkdb_rehearsal_metrics_file=str(ROOT / 'rehearsal.prom'),
                     bigchaindb_federation_keys=[bigchaindb_data.Signer(0, 'node', index).public_key for index in range(bigchaindb_data.DEFAULT_VOTERS)])
    playbook(inventory, 'bigchaindb.rethinkdb.verify', '-e', json.dumps(rehearsal))


def main() -> None:
    stop_leftovers()
    ROOT.mkdir(parents=True)
    banner('Starting a local 3-node RethinkDB cluster under %s' % os.path.relpath(ROOT, REPO))
    names = ['node1', 'node2', 'node3']
    with data_directories(names) as (data_dirs, backend):
        cluster = Cluster(ROOT / 'cluster', size=len(names), data_dirs=data_dirs)
        try:
            cluster.start()
            print('servers: %s' % ', '.join('%s (driver port %d)' % (node.name, node.driver_port) for node in cluster.nodes))
            run_demo(cluster, backend)
        finally:
            cluster.teardown()
    banner('Done: the cluster is stopped; backups and reports stay under %s' % os.path.relpath(ROOT / 'backups', REPO))


if __name__ == '__main__':
    main()
