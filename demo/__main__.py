"""`make demo`: the collection at work on a local 3-node cluster.

Starts three RethinkDB servers on loopback (the ReQL test server, or real ones when RETHINKDB_BIN names a
`rethinkdb` binary), loads BigchainDB-shaped data, and runs the collection's playbooks against a 3-host
inventory with real `ansible-playbook`, printing what each step reports. Everything lives under
.build/demo/ and the servers are stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from rethinkdb import RethinkDB

from tests.harness import bigchaindb_data, stop_server
from tests.harness.cluster import Cluster

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / '.build' / 'demo'
BLOCKS = 300


def banner(text: str) -> None:
    """A heading between the steps, so the output reads as a story."""
    print('\n' + '=' * 100 + '\n== ' + text + '\n' + '=' * 100, flush=True)


def stop_leftovers() -> None:
    """Stop the servers of an earlier demo that did not get to clean up, then remove its files."""
    for pid_file in sorted((ROOT / 'cluster' / 'run').glob('*.pid')):
        stop_server.main([str(pid_file), '30'])
    shutil.rmtree(ROOT, ignore_errors=True)


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
        sys.exit('demo: %s failed (exit %d); the cluster is left running under %s for a look' % (name, completed.returncode, ROOT))


def main() -> None:
    stop_leftovers()
    ROOT.mkdir(parents=True)
    banner('Starting a local 3-node RethinkDB cluster under %s' % os.path.relpath(ROOT, REPO))
    cluster = Cluster(ROOT / 'cluster', size=3)
    cluster.start()
    print('servers: %s' % ', '.join('%s (driver port %d)' % (node.name, node.driver_port) for node in cluster.nodes))
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

    cluster.teardown()
    banner('Done: the cluster is stopped; its files stay under %s' % os.path.relpath(ROOT, REPO))


if __name__ == '__main__':
    main()
