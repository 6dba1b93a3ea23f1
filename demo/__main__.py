"""`make demo`: the collection at work on a local 3-node cluster.

Starts three RethinkDB servers on loopback (the ReQL test server, or real ones when RETHINKDB_BIN names a
`rethinkdb` binary), loads BigchainDB-shaped data, and runs the collection's playbooks against a 3-host
inventory with real `ansible-playbook`: replication, a logical backup and restore, a coordinated snapshot
backup and whole-cluster restore (btrfs on a loop device when run as root, the `stopped` backend
otherwise), each after damaging the data, with the cluster's facts before and after; then continuous backup
(the follower) and a point-in-time restore to a second before an accident. Everything lives under
.build/demo/; the follower and the servers are stopped at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from rethinkdb import RethinkDB

from ansible_collections.bigchaindb.rethinkdb.tests.harness import bigchaindb_data, loopfs, stop_server
from ansible_collections.bigchaindb.rethinkdb.tests.harness.cluster import Cluster, server_binary
from ansible_collections.bigchaindb.rethinkdb.tests.harness.follower import Writer

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / '.build' / 'demo'
BLOCKS = 300
# The follower role's variables for the demo: a detached process (no systemd needed), everything under ROOT,
# a segment sealed every second.
FOLLOWER_DIR = ROOT / 'follower'
FOLLOWER = dict(follower_service_manager='process', follower_install_dir=str(FOLLOWER_DIR / 'opt'),
                follower_config_dir=str(FOLLOWER_DIR / 'etc'), follower_state_dir=str(FOLLOWER_DIR / 'state'),
                follower_metrics_file=str(FOLLOWER_DIR / 'follower.prom'), follower_seal_seconds=1)
VOTES_DELETED = 50


def banner(text: str) -> None:
    """A heading between the steps, so the output reads as a story."""
    print('\n' + '=' * 100 + '\n== ' + text + '\n' + '=' * 100, flush=True)


def stop_follower() -> None:
    """Stop the follower the demo started, if it still runs (the program checks that its pid file names it)."""
    program = FOLLOWER_DIR / 'opt' / 'rethinkdb_follower.py'
    pid_file = FOLLOWER_DIR / 'state' / 'follower.pid'
    if not program.exists() or not pid_file.exists():
        return
    subprocess.run([sys.executable, str(program), '--config', str(FOLLOWER_DIR / 'etc' / 'rethinkdb.json'), '--stop', '--pid-file', str(pid_file)],
                   env=dict(os.environ, PYTHONPATH=str(FOLLOWER_DIR / 'opt'), PYTHONDONTWRITEBYTECODE='1'), check=False)


def stop_leftovers() -> None:
    """Stop the follower and the servers of an earlier demo that did not get to clean up, unmount its filesystem,
    remove its files."""
    stop_follower()
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


def counts(cluster: Cluster) -> dict:
    """Documents per table of database bigchain, the tables moved aside by a restore included."""
    r = RethinkDB()
    with cluster.connect() as connection:
        return dict((table, r.db('bigchain').table(table).count().run(connection)) for table in sorted(r.db('bigchain').table_list().run(connection)))


def follower_status() -> dict:
    """What the follower says of itself in its status file ({} before it wrote one)."""
    try:
        return json.loads((FOLLOWER_DIR / 'state' / 'status.json').read_text())
    except (OSError, ValueError):
        return {}


def wait_for_follower(check, what: str, timeout: float = 60.0) -> dict:
    """Poll the follower's status file until check(status); stop the demo if it does not come."""
    deadline = time.monotonic() + timeout
    while True:
        status = follower_status()
        if status and check(status):
            return status
        if time.monotonic() > deadline:
            sys.exit('demo: the follower did not reach %s in %.0f s (status: %s); see %s' % (
                what, timeout, status, os.path.relpath(FOLLOWER_DIR / 'state' / 'follower.log', REPO)))
        time.sleep(0.2)


def continuous_backup(cluster: Cluster, inventory: Path) -> None:
    """The follower keeps the append-only tables backed up; an accident; a restore to a second before it."""
    banner('Continuous backup: the follower continues the dump set with a chain of sealed segments (one every second)')
    playbook(inventory, 'bigchaindb.rethinkdb.follower', '-e', json.dumps(FOLLOWER))
    writer = Writer(cluster, rate=40).start()
    time.sleep(5)
    writer.stop()
    written = len(writer.acknowledged())
    wait_for_follower(lambda status: sum(status['counters']['documents'].values()) >= written and status['pending_records'] == 0,
                      'the %d new documents sealed' % written)
    print('%d new blocks and votes written and sealed into the chain' % written)
    before = counts(cluster)
    # The point to go back to: a whole second after the last write, and the accident more than a second later.
    until = int(time.time()) + 1
    time.sleep(until + 1.2 - time.time())

    banner('An accident at %sZ: %d votes deleted from bigchain.votes; the follower records them as alarms, never applies them'
           % (time.strftime('%H:%M:%S', time.gmtime()), VOTES_DELETED))
    r = RethinkDB()
    with cluster.connect() as connection:
        r.db('bigchain').table('votes').limit(VOTES_DELETED).delete().run(connection)
    wait_for_follower(lambda status: status['counters']['alarms'].get('bigchain.votes', {}).get('delete', 0) >= VOTES_DELETED
                      and status['pending_records'] == 0, 'the deletions recorded')
    print('documents before the accident: %s; after it: %s' % (before, counts(cluster)))
    print("the follower's figures (%s):" % os.path.relpath(FOLLOWER_DIR / 'follower.prom', REPO))
    for line in (FOLLOWER_DIR / 'follower.prom').read_text().splitlines():
        if line.startswith(('rethinkdb_follower_lag_seconds', 'rethinkdb_follower_chain_', 'rethinkdb_follower_alarms_total')):
            print('  ' + line)
    playbook(inventory, 'bigchaindb.rethinkdb.follower', '-e', json.dumps(dict(FOLLOWER, follower_state='stopped')))

    until_text = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(until))
    banner('Point-in-time restore to %s, a second before the accident: tables moved aside, the dump set restored, the '
           'segments loaded up to then, counts checked' % until_text)
    print('first what it would restore, in check mode (nothing is touched):')
    playbook(inventory, 'bigchaindb.rethinkdb.restore', '-e', 'point_in_time=%s' % until_text, '--check')
    playbook(inventory, 'bigchaindb.rethinkdb.restore', '-e', 'point_in_time=%s' % until_text)
    after = counts(cluster)
    print('documents after the restore: %s' % after)
    if dict((table, after[table]) for table in before) != before:
        sys.exit('demo: the restore did not bring back the documents of before the accident (%s, not %s)' % (after, before))
    print('bigchain.bigchain and bigchain.votes hold what they held before the accident; the damaged tables are kept aside')


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

    continuous_backup(cluster, inventory)


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
            stop_follower()
            cluster.teardown()
    banner('Done: the follower and the cluster are stopped; backups, chains and reports stay under %s'
           % os.path.relpath(ROOT / 'backups', REPO))


if __name__ == '__main__':
    main()
