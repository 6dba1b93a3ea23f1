"""Trust under faults: the controller dies during a backup or a restore, parts rot under a matching checksum,
a set's topology is unusable, the repository is full. After each, the cluster is never worse off, nothing good
is lost, and running the same playbook again (or rolling back) finishes the work without manual clean-up.

The controller's death is deterministic (tests/integration/faults.py): ansible-playbook and every process
below it, the modules included, are killed just before a named task or at a named step inside a module.
One 3-node cluster (plain directories, backend stopped) is shared, used in file order.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from rethinkdb import RethinkDB

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import manifest_bytes
from ansible_collections.bigchaindb.rethinkdb.tests.harness.cluster import wait_for
from ansible_collections.bigchaindb.rethinkdb.tests.harness.loopfs import tmpfs
from ansible_collections.bigchaindb.rethinkdb.tests.integration.faults import run_interrupted
from ansible_collections.bigchaindb.rethinkdb.tests.integration.helpers import (
    BACKUP, RESTORE, Setup, assert_healthy, assert_released, documents, journal, needs, started, state_of, wait_ready)

r = RethinkDB()
SNAPSHOT = dict(method='snapshot', backend='stopped', backup_max_skew_ms=2000, backup_barrier_delay=5)
STAGE_TASK = "Check and unpack this node's part (sha256, zstd checksum, file index, key)"
SWAP_TASK = "Put each node's restored data in place (the previous data is moved aside)"
# A probe file with set-uid, set-gid and sticky bits in node1's data directory: a data directory never needs
# them, so a restore must never give them back.
PROBE = 'probe-special-bits'


@pytest.fixture(name='setup', scope='module')
def fixture_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('faults')
    with started(root) as cluster:
        yield Setup(cluster, root)


@pytest.fixture(name='backed_up', scope='module')
def fixture_backed_up(setup):
    """A complete snapshot set and the documents it holds (nobody writes during it)."""
    probe = setup.cluster.node('node1').data_dir / PROBE
    probe.write_text('probe')
    os.chmod(probe, 0o7755)
    run = setup.ansible.playbook(BACKUP, SNAPSHOT)
    probe.unlink()
    committed = run.result('Commit the set')
    return dict(set_id=committed['manifest']['set_id'], manifest=committed['manifest'], path=Path(committed['path']),
                documents=all_documents(setup))


def all_documents(setup: Setup) -> dict:
    return dict((table, documents(setup.cluster, table)) for table in ('bigchain', 'votes', 'backlog'))


def servers_running(setup: Setup) -> bool:
    return all(node.pid() is not None and Path('/proc', str(node.pid())).exists() for node in setup.cluster.nodes)


def damage_votes(setup: Setup, count: int) -> dict:
    """Delete some votes and change a block; return the damaged documents."""
    with setup.cluster.connect() as connection:
        r.db('bigchain').table('votes').limit(count).delete().run(connection)
        r.db('bigchain').table('bigchain').limit(1).update({'damaged': True}).run(connection)
    return all_documents(setup)


def aside_names(setup: Setup, kind: str) -> list:
    return [name for name in state_of(setup)[1] if kind in name]


@needs()
def test_a_backup_killed_with_the_servers_stopped_restarts_them_and_the_next_backup_needs_no_clean_up(setup, backed_up):
    """Killed while every node's server is stopped for its copy: each node's watchdog starts its server at once;
    its lock, staging copy and the partial set stay until the next backup, which breaks the locks of the run that
    is gone, releases what it took, marks its set failed, and succeeds. Without the watchdog the servers stayed
    down; without the lock check the next backup was refused until someone released every node by hand."""
    killed = run_interrupted(setup.ansible, BACKUP, SNAPSHOT, at_point='snapshot:server_stopped')
    wait_for(lambda: servers_running(setup), timeout=30)
    wait_ready(setup.cluster)
    locks = [Path('%s.backup-lock' % data_dir) for data_dir in setup.data_dirs()]
    assert any(lock.exists() for lock in locks), 'the killed run held its locks'
    interrupted = json.loads(next(lock for lock in locks if lock.exists()).read_text())['set_id']
    assert killed.results('Commit the set') == []

    again = setup.ansible.playbook(BACKUP, SNAPSHOT)

    assert again.result('Commit the set')['changed']
    assert_released(setup)
    assert all_documents(setup) == backed_up['documents']
    states = dict((entry['set_id'], entry) for entry in setup.sets())
    assert states[interrupted]['state'] == 'failed'
    assert 'interrupted' in states[interrupted]['reason'] and 'its run was gone' in states[interrupted]['reason']


@needs()
def test_a_backup_stopped_by_ctrl_c_leaves_nothing_the_next_backup_cannot_clear(setup):
    """Ctrl-C after every node took its snapshot, before the archives: the next backup runs without clean-up."""
    run_interrupted(setup.ansible, BACKUP, SNAPSHOT, before_task="Archive every node's snapshot into its part of the set",
                    how='interrupt')
    assert servers_running(setup)

    again = setup.ansible.playbook(BACKUP, SNAPSHOT)

    assert again.result('Commit the set')['changed']
    assert_released(setup)
    assert_healthy(setup.cluster)


@needs()
def test_a_restore_killed_at_each_step_is_finished_by_running_it_again(setup, backed_up):
    """Killed after staging (servers still running), then killed again after some nodes renamed their data but
    before their journals say so (every server stopped): each time, running the same restore again picks up its
    journal and finishes; the set's documents are back, every server runs, each node's previous data is aside.
    Before the journals, the second case unpacked again, refused the existing moved-aside directory, and left
    every server down."""
    damaged = damage_votes(setup, 5)
    first = run_interrupted(setup.ansible, RESTORE, dict(set=backed_up['set_id']), at_point='data_restore:staged')
    assert servers_running(setup) and all_documents(setup) == damaged
    staged = [journal(data_dir) for data_dir in setup.data_dirs() if Path('%s.restore-journal.json' % data_dir).exists()]
    assert staged and all(record['set_id'] == backed_up['set_id'] for record in staged)
    assert first.results(SWAP_TASK) == []

    second = run_interrupted(setup.ansible, RESTORE, dict(set=backed_up['set_id']), at_point='data_restore:renamed')
    restore_id = journal(setup.data_dirs()[0])['restore_id']
    assert {journal(data_dir)['restore_id'] for data_dir in setup.data_dirs()} == {restore_id} == {record['restore_id'] for record in staged}
    assert [journal(data_dir)['phase'] for data_dir in setup.data_dirs()].count('swapping') >= 1
    assert second.results('Start every server') == []
    assert not servers_running(setup), 'every server was stopped for the swap'

    finished = setup.ansible.playbook(RESTORE, dict(set=backed_up['set_id']))

    assert finished.result('Record in each node\'s journal that the restore was verified', 'node1')['changed']
    assert all_documents(setup) == backed_up['documents']
    assert_healthy(setup.cluster)
    for data_dir in setup.data_dirs():
        record = journal(data_dir)
        assert (record['restore_id'], record['phase']) == (restore_id, 'finished')
        assert Path(record['aside']).is_dir()
    probe = setup.cluster.node('node1').data_dir / PROBE
    assert stat.S_IMODE(probe.stat().st_mode) == 0o755, 'set-uid, set-gid and sticky bits are never restored'
    assert journal(setup.cluster.node('node1').data_dir)['special_bits'] == [PROBE]
    probe.unlink()


@needs()
def test_restoring_the_same_set_again_puts_its_documents_back_again(setup, backed_up):
    """A second restore of the set restored before, the cluster damaged in between, restores it again. Before,
    the record of the first restore made every node report no change and the damage stayed, reported as ok."""
    damage_votes(setup, 3)

    again = setup.ansible.playbook(RESTORE, dict(set=backed_up['set_id']))

    assert all_documents(setup) == backed_up['documents']
    assert [result['changed'] for result in again.results(SWAP_TASK)] == [True, True, True]
    assert len({journal(data_dir)['restore_id'] for data_dir in setup.data_dirs()}) == 1


@needs()
def test_a_killed_restore_is_rolled_back_to_the_data_from_before_it(setup, backed_up):
    """Killed after the renames on some nodes; restore_rollback puts every node's previous data back (the
    restored data is kept aside, never deleted) and starts the servers."""
    damaged = damage_votes(setup, 4)
    run_interrupted(setup.ansible, RESTORE, dict(set=backed_up['set_id']), at_point='data_restore:renamed')
    restore_id = journal(setup.data_dirs()[0])['restore_id']

    rolled = setup.ansible.playbook(RESTORE, dict(rollback=True))

    assert servers_running(setup)
    wait_ready(setup.cluster)
    assert all_documents(setup) == damaged
    for data_dir in setup.data_dirs():
        assert journal(data_dir)['phase'] == 'rolled_back'
    assert len(aside_names(setup, '.rolled-back-%s' % restore_id)) >= 1
    assert 'rolled back restore %s of set %s' % (restore_id, backed_up['set_id']) in rolled.output
    setup.ansible.playbook(RESTORE, dict(set=backed_up['set_id']))
    assert all_documents(setup) == backed_up['documents']


def rewrite_manifest(set_dir: Path, change) -> bytes:
    """Change a committed set's manifest in place (as a bug or a hand could); returns the original bytes."""
    path = set_dir / 'manifest.json'
    original = path.read_bytes()
    manifest = json.loads(original)
    change(manifest)
    path.write_bytes(manifest_bytes(manifest))
    return original


@needs()
def test_a_part_damaged_under_a_matching_sha256_is_found_while_staging(setup, backed_up):
    """One bit of node2's part flipped, and the manifest's size and sha256 rewritten to match: the zstd checksum
    and the file index find it while node2 stages, before any server stops. Before, 51 of 60 such flips
    unpacked without an error and the restore reported success."""
    [part] = [part for part in backed_up['manifest']['parts'] if part['server'] == 'node2']
    part_path = backed_up['path'] / part['path']
    original_part = part_path.read_bytes()
    damaged = bytearray(original_part)
    damaged[len(damaged) // 2] ^= 0x10
    part_path.write_bytes(bytes(damaged))

    def matching(manifest):
        for entry in manifest['parts']:
            if entry['server'] == 'node2':
                entry['sha256'] = hashlib.sha256(damaged).hexdigest()

    original_manifest = rewrite_manifest(backed_up['path'], matching)
    pids = setup.pids()
    try:
        refused = setup.ansible.playbook(RESTORE, dict(set=backed_up['set_id']), expect_rc=2)
    finally:
        part_path.write_bytes(original_part)
        (backed_up['path'] / 'manifest.json').write_bytes(original_manifest)

    [(task, host, message)] = [failure for failure in refused.failures() if failure[0] == STAGE_TASK]
    assert host == 'node2'
    assert message.startswith('Cannot restore part nodes/node2/data.tar.zst here: ')
    assert any(word in message for word in ('checksum', 'index', 'archived as', 'corruption')), message
    assert refused.results('Stop every server') == []
    assert setup.pids() == pids


@needs()
@pytest.mark.parametrize('breakage', ['no shards', 'no topology'])
def test_a_set_whose_topology_is_unusable_is_refused_before_the_cluster_is_touched(setup, backed_up, breakage):
    def broken(manifest):
        if breakage == 'no topology':
            del manifest['topology']
        else:
            manifest['topology']['tables']['bigchain.votes']['config']['shards'] = []

    original = rewrite_manifest(backed_up['path'], broken)
    before = state_of(setup)
    try:
        refused = setup.ansible.playbook(RESTORE, dict(set=backed_up['set_id']), expect_rc=2)
    finally:
        (backed_up['path'] / 'manifest.json').write_bytes(original)

    [(task, host, message)] = refused.failures()
    assert task == 'Choose the backup set and check it before touching the cluster (manifest, topology, sizes, store checksums)'
    expected = 'manifest has no topology' if breakage == 'no topology' else 'topology.tables[bigchain.votes] has no config.shards'
    assert message.startswith('Backup set %s is invalid: ' % backed_up['set_id']) and expected in message, message
    assert state_of(setup) == before


@needs('mount', 'umount')
def test_a_full_repository_still_marks_the_failed_set_failed(setup):
    """The repository's filesystem fills up during the backup: the set cannot be committed, and although no
    marker file fits, the set is marked failed (renamed), never left looking like a backup still running."""
    with tmpfs(setup.workdir / 'full-repository', 1) as full:
        filler = full / 'filler'
        with open(filler, 'wb') as stream:
            stream.write(b'x' * (os.statvfs(full).f_bavail * os.statvfs(full).f_frsize - 12 * 1024))
        ansible = setup.other_inventory('full', {}, dict(rethinkdb_backup_repository=str(full)))
        refused = ansible.playbook(BACKUP, SNAPSHOT, expect_rc=2)
        listed = [entry for entry in os.listdir(full / 'rethinkdb') if entry != 'reports']

    assert len(listed) == 1 and listed[0].endswith('.failed'), listed
    assert 'failed and was not committed; it stays marked failed' in refused.output
    assert_released(setup)
    assert_healthy(setup.cluster)
