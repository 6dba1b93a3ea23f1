"""Coordinated snapshot backups and whole-cluster restores through the backup and restore playbooks.

Three 3-node clusters: data directories in btrfs subvolumes, on XFS filesystems (a loop filesystem per
node, as on separate machines), and in plain directories. A writer inserts documents with hard
durability throughout each backup; after damage and a restore, every insert acknowledged before the
set's barrier must be back, and nothing written after the last snapshot. Then the faults the roles must
refuse cleanly: a node down, a node's module killed while its filesystem is frozen, a skew over the limit
after every node took its snapshot, a corrupt part, a set and an inventory that do not match, no room to
stage, and a lock held by another backup.

Needs root (mounts, loop devices, fsfreeze); each test skips with the reason when a tool is missing.
Clusters sharing a module fixture are used in file order: the tests that refuse change nothing, and the
tests that restore come last.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from rethinkdb import RethinkDB
from rethinkdb.errors import ReqlError

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import new_set_id
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_lock import NodeLock
from ansible_collections.bigchaindb.rethinkdb.tests.harness.cluster import Cluster, wait_for
from ansible_collections.bigchaindb.rethinkdb.tests.harness.loopfs import loop_filesystem, thaw, tmpfs
from ansible_collections.bigchaindb.rethinkdb.tests.integration.helpers import (
    BACKUP, NODES, RESTORE, Setup, assert_healthy, assert_released, assert_untouched, close_quietly, damage, documents, failed_set,
    journal, needs, started, state_of, wait_ready)

r = RethinkDB()
COMMIT_TASK = 'Commit the set'
MATCH_TASK = 'Check that the set and the inventory match one to one'
STAGE_TASK = "Check and unpack this node's part (sha256, zstd checksum, file index, key)"
STAGE_REFUSED_TASK = 'Stop before anything is stopped'
LOCK_REFUSED_TASK = 'Refuse to break the lock of a backup that may still run'
SNAPSHOT_TASK = "Take every node's snapshot at the same instant"
# The role's limit on the skew between the nodes' snapshots (backup_max_skew_ms).
MAX_SKEW_MS = 250
# Seconds from choosing the barrier to the barrier: the role's 3 s default leaves too little room for three
# module starts on this shared 2-core machine under load (a node starting late shows as skew).
BARRIER_DELAY = 5
# The stopped backend's capture instant is when a server has stopped, so its skew is the spread of the servers'
# shutdown times: 50 to 110 ms here on an idle machine, more under load; its tests allow this much.
STOPPED_MAX_SKEW_MS = 1000
# taken_at is written with milliseconds; a document sent this long after it may still be in the snapshot.
TIME_ROUNDING = 0.002


@contextlib.contextmanager
def frozen(mountpoint: Path):
    """A filesystem frozen for the duration; always thawed."""
    subprocess.run(['fsfreeze', '--freeze', str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        thaw(mountpoint)


class Writer(threading.Thread):
    """Inserts numbered documents into bigchain.backlog one at a time with hard durability until stopped, through
    whichever node answers, and records when each acknowledged insert was sent and acknowledged. An insert that
    fails (its server stopped) is not retried: it may or may not have been written, so no test counts on it."""

    def __init__(self, cluster: Cluster, pause: float = 0.02):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.pause = pause
        self.prefix = 'writer-%s' % uuid.uuid4().hex[:8]
        self.stopping = threading.Event()
        self.acknowledged: list = []
        self.errors: list = []

    def run(self) -> None:
        number = 0
        node = 0
        connection = None
        while not self.stopping.is_set():
            if connection is None:
                try:
                    connection = self.cluster.connect(NODES[node % len(NODES)], timeout=2)
                except (ReqlError, OSError) as exc:
                    self.errors.append(str(exc))
                    node += 1
                    self.stopping.wait(0.1)
                    continue
            document = dict(id='%s-%06d' % (self.prefix, number), assignee='writer', assignment_timestamp=number)
            number += 1
            sent_at = time.time()
            try:
                written = r.db('bigchain').table('backlog').insert(document, durability='hard').run(connection)
            except (ReqlError, OSError) as exc:
                self.errors.append(str(exc))
                close_quietly(connection)
                connection = None
                node += 1
                continue
            if written['inserted'] == 1:
                self.acknowledged.append((document['id'], sent_at, time.time()))
            else:
                self.errors.append(written.get('first_error', repr(written)))
            self.stopping.wait(self.pause)
        if connection is not None:
            close_quietly(connection)

    def wait_writing(self, count: int, timeout: float = 30) -> None:
        """Wait until `count` inserts were acknowledged; fail with the last errors if they are not."""
        deadline = time.monotonic() + timeout
        while len(self.acknowledged) < count:
            assert time.monotonic() < deadline, 'the writer cannot write: %s' % self.errors[-3:]
            time.sleep(0.1)

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)

    def acknowledged_before(self, instant: float) -> set:
        return set(key for key, sent_at, acked_at in self.acknowledged if acked_at < instant)

    def sent_after(self, instant: float) -> set:
        return set(key for key, sent_at, acked_at in self.acknowledged if sent_at > instant)


def epoch(iso: str) -> float:
    """A time as the backup set format writes it (2026-11-24T16:30:00.123Z), in seconds since the epoch."""
    return datetime.datetime.strptime(iso, '%Y-%m-%dT%H:%M:%S.%fZ').replace(tzinfo=datetime.timezone.utc).timestamp()


class BackedUp:
    """A snapshot backup taken with the writer inserting throughout, and what the tests compare with."""

    def __init__(self, setup: Setup, backend: str, **variables):
        self.setup = setup
        self.unchanged = dict((table, documents(setup.cluster, table)) for table in ('bigchain', 'votes'))
        self.writer = Writer(setup.cluster)
        self.writer.start()
        try:
            self.writer.wait_writing(10)
            self.run = setup.ansible.playbook(BACKUP, dict(dict(backup_barrier_delay=BARRIER_DELAY, **variables), method='snapshot',
                                                           backend=backend))
        finally:
            self.writer.stop()
        committed = self.run.result(COMMIT_TASK)
        self.set_dir = Path(committed['path'])
        self.manifest = committed['manifest']
        assert json.loads((self.set_dir / 'manifest.json').read_text()) == self.manifest


def assert_snapshot_record(manifest: dict, backend: str, max_skew_ms: float = MAX_SKEW_MS) -> dict:
    """The manifest's snapshot record: backend, barrier, each node's taken_at after it, skew as measured."""
    snapshot = manifest['snapshot']
    barrier_at = epoch(snapshot['barrier_at'])
    taken = [epoch(node['taken_at']) for node in snapshot['nodes']]
    assert snapshot['backend'] == backend
    assert [(node['server'], node['host']) for node in snapshot['nodes']] == [(name, name) for name in NODES]
    assert all(barrier_at <= taken_at < barrier_at + 30 for taken_at in taken), snapshot
    assert abs(snapshot['skew_ms'] - (max(taken) - min(taken)) * 1000) <= 2
    assert 0 <= snapshot['skew_ms'] <= max_skew_ms
    return snapshot


def assert_restored(backed_up: BackedUp) -> None:
    """What a restore must give back: a healthy cluster; the tables nobody wrote to as they were; every insert
    acknowledged before the barrier and none sent after the last snapshot; counts within the bounds the set
    records; each node's previous data kept aside and its journal finished; nothing of the backup left on the
    nodes."""
    setup, writer, snapshot = backed_up.setup, backed_up.writer, backed_up.manifest['snapshot']
    documents_after = backed_up.manifest['topology']['documents_after']
    assert_healthy(setup.cluster)
    for table, before in backed_up.unchanged.items():
        assert documents(setup.cluster, table) == before, table
    backlog = set(documents(setup.cluster, 'backlog'))
    acknowledged = writer.acknowledged_before(epoch(snapshot['barrier_at']))
    last_taken = max(epoch(node['taken_at']) for node in snapshot['nodes'])
    assert len(acknowledged) >= 10
    assert sorted(acknowledged - backlog) == [], 'acknowledged before the barrier but not restored'
    assert sorted(writer.sent_after(last_taken + TIME_ROUNDING) & backlog) == [], 'sent after every snapshot, yet restored'
    recorded = dict((table['name'], table['documents']) for table in backed_up.manifest['tables'])
    after = dict((name.split('.')[1], count) for name, count in documents_after.items())
    assert recorded['backlog'] < after['backlog'], 'the writer inserted during the backup'
    assert recorded['backlog'] <= len(backlog) <= after['backlog']
    for data_dir in setup.data_dirs():
        record = journal(data_dir)
        assert (record['set_id'], record['phase']) == (backed_up.manifest['set_id'], 'finished')
        assert os.stat(data_dir).st_ino == record['data_dir_inode']
        aside = Path(record['aside'])
        assert aside == Path('%s.before-restore-%s' % (data_dir, record['restore_id']))
        assert aside.is_dir() and any(aside.iterdir()), aside
    assert_released(setup)


# btrfs: every node's data directory in a subvolume (like /var/lib/rethinkdb/default in a subvolume
# /var/lib/rethinkdb), each on a btrfs loop filesystem of its own, as on separate machines: three nodes
# unpacking a restore at once into one small filesystem would each see room that the others then take.


@pytest.fixture(name='btrfs_setup', scope='module')
def fixture_btrfs_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('btrfs')
    with contextlib.ExitStack() as mounted:
        data_dirs = {}
        for name in NODES:
            subvolume = mounted.enter_context(loop_filesystem(root / ('btrfs-' + name), 'btrfs', 300)) / 'rethinkdb'
            subprocess.run(['btrfs', 'subvolume', 'create', str(subvolume)], check=True, stdout=subprocess.DEVNULL)
            data_dirs[name] = subvolume / 'default'
        cluster = mounted.enter_context(started(root, data_dirs))
        yield Setup(cluster, root, shared_path=True)


@needs('losetup', 'mkfs.btrfs', 'btrfs')
def test_a_shared_path_not_mounted_on_a_node_is_refused_before_any_snapshot(btrfs_setup):
    """node3 sees another directory at the repository's path (its mount is missing): its preflight cannot find
    the set the controller began there, and nothing is taken anywhere."""
    elsewhere = btrfs_setup.workdir / 'not-mounted'
    elsewhere.mkdir()
    ansible = btrfs_setup.other_inventory('unmounted', dict(node3=dict(rethinkdb_backup_repository='path:%s' % elsewhere)))
    before = state_of(btrfs_setup)

    refused = ansible.playbook(BACKUP, dict(method='snapshot', backend='btrfs'), expect_rc=2)

    [(task, host, message)] = [failure for failure in refused.failures() if failure[0] == 'Check that the node can take its snapshot']
    assert host == 'node3'
    assert 'does not hold set' in message and 'mount the shared repository at %s on this node' % elsewhere in message
    assert refused.results(SNAPSHOT_TASK) == []
    assert list(elsewhere.iterdir()) == []
    assert_untouched(btrfs_setup, before)


@needs('losetup', 'mkfs.btrfs', 'btrfs')
def test_a_set_failing_after_the_snapshots_releases_every_node(btrfs_setup):
    before = state_of(btrfs_setup)

    refused = btrfs_setup.ansible.playbook(BACKUP, dict(method='snapshot', backend='btrfs', backup_max_skew_ms=0), expect_rc=2)

    assert [host for task, host, message in refused.failures() if task == "Check the skew between the nodes' snapshots"] == ['node1']
    assert [result['changed'] for result in refused.results(SNAPSHOT_TASK)] == [True, True, True]
    assert 'too far apart for one consistent set. They started ' in failed_set(btrfs_setup)['reason']
    assert_released(btrfs_setup)
    assert_untouched(btrfs_setup, before)


@needs('losetup', 'mkfs.btrfs', 'btrfs')
def test_btrfs_snapshot_of_a_live_cluster_restores_every_acknowledged_write(btrfs_setup):
    backed_up = BackedUp(btrfs_setup, 'btrfs')
    damage(btrfs_setup.cluster)
    btrfs_setup.ansible.playbook(RESTORE)

    snapshot = assert_snapshot_record(backed_up.manifest, 'btrfs')
    assert [node['freeze_ms'] for node in snapshot['nodes']] == [0.0, 0.0, 0.0]
    assert_restored(backed_up)


# fsfreeze: every node's data directory on an XFS loop filesystem of its own (one filesystem cannot be frozen
# twice), copied while frozen to a staging directory on the test's own filesystem.


@pytest.fixture(name='xfs_setup', scope='module')
def fixture_xfs_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('xfs')
    staging = root / 'staging'
    staging.mkdir()
    with contextlib.ExitStack() as mounted:
        mountpoints = [mounted.enter_context(loop_filesystem(root / ('xfs-' + name), 'xfs', 300)) for name in NODES]
        cluster = mounted.enter_context(started(root, dict((name, mountpoint / name) for name, mountpoint in zip(NODES, mountpoints))))
        yield Setup(cluster, root, dict((name, dict(backup_snapshot_staging_dir=str(staging))) for name in NODES))


def copy_process(data_dir: Path) -> int | None:
    """The pid of a running `cp` of data_dir (the fsfreeze backend's copy), or None."""
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            argv = Path('/proc', pid, 'cmdline').read_bytes().split(b'\0')
        except OSError:
            continue
        if os.path.basename(argv[0]) == b'cp' and os.fsencode(data_dir) in argv:
            return int(pid)
    return None


def ended(runner: threading.Thread, finished: list) -> None:
    """Fail at once if the backup ended before it started copying (instead of waiting for a copy that never comes)."""
    if not runner.is_alive():
        output = finished[0].output[-3000:] if finished else 'no run recorded'
        pytest.fail('the backup ended before node1 started its copy:\n%s' % output)


def parent_of(pid: int) -> int:
    return int(Path('/proc', str(pid), 'stat').read_text().rsplit(')', 1)[1].split()[1])


def alive(pid: int) -> bool:
    return Path('/proc', str(pid)).exists() and Path('/proc', str(pid), 'stat').read_text().rsplit(')', 1)[1].split()[0] != 'Z'


@needs('losetup', 'mkfs.xfs', 'mkfs.ext4', 'fsfreeze')
def test_a_snapshot_killed_while_frozen_is_thawed_at_once_and_released(xfs_setup):
    """node1 copies into a staging filesystem that the test keeps frozen, so its module is stuck in the copy with
    node1's data filesystem frozen; SIGKILL it there. Its watchdog must thaw at once, the run must fail naming
    node1, and every node must be released."""
    setup = xfs_setup
    node1 = setup.cluster.node('node1')
    freeze_timeout = 60
    before = state_of(setup)
    probe_path = node1.data_dir.parent / 'probe'
    finished = []
    with loop_filesystem(setup.workdir / 'stuck-staging', 'ext4', 128) as stuck:
        ansible = setup.other_inventory('stuck', dict(node1=dict(backup_snapshot_staging_dir=str(stuck))))
        backup = threading.Thread(target=lambda: finished.append(ansible.playbook(
            BACKUP, dict(method='snapshot', backend='fsfreeze', backup_freeze_timeout=freeze_timeout), expect_rc=None)))
        try:
            with frozen(stuck):
                backup.start()
                copier = wait_for(lambda: copy_process(node1.data_dir) or ended(backup, finished), timeout=120)
                lock = json.loads(Path('%s.backup-lock' % node1.data_dir).read_text())
                probe = subprocess.Popen([sys.executable, '-c', 'import sys; open(sys.argv[1], "w").write("thawed")', str(probe_path)])
                time.sleep(0.5)
                assert probe.poll() is None, "node1's data filesystem is frozen: a write waits"
                killed_at = time.monotonic()
                os.kill(parent_of(copier), signal.SIGKILL)
                probe.wait(freeze_timeout)
                thawed_after = time.monotonic() - killed_at
        finally:
            if backup.ident is not None:
                backup.join(300)
        stuck_leftovers = [path for path in stuck.iterdir() if path.name != 'lost+found']
    [refused] = finished

    assert thawed_after < 5, 'thawed %.1f s after the kill (freeze_timeout %d s)' % (thawed_after, freeze_timeout)
    assert not alive(lock['watchdog']['pid'])
    assert refused.rc == 2
    assert [(task, host) for task, host, message in refused.failures() if task == SNAPSHOT_TASK] == [(SNAPSHOT_TASK, 'node1')]
    assert "node1: Take every node's snapshot at the same instant" in failed_set(setup)['reason']
    assert_released(setup, setup.workdir / 'staging')
    assert stuck_leftovers == []
    assert probe_path.read_text() == 'thawed'
    probe_path.unlink()
    assert_untouched(setup, before)


@needs('losetup', 'mkfs.xfs', 'fsfreeze')
def test_fsfreeze_snapshot_of_a_live_cluster_restores_every_acknowledged_write(xfs_setup):
    backed_up = BackedUp(xfs_setup, 'fsfreeze')
    damage(xfs_setup.cluster)
    xfs_setup.ansible.playbook(RESTORE)

    snapshot = assert_snapshot_record(backed_up.manifest, 'fsfreeze')
    assert all(node['freeze_ms'] > 0 for node in snapshot['nodes']), snapshot
    assert_restored(backed_up)
    assert_released(xfs_setup, xfs_setup.workdir / 'staging')


# stopped: plain directories; node3's sits on a small tmpfs, which a test fills.

TMPFS_MEGABYTES = 192


@pytest.fixture(name='plain_setup', scope='module')
def fixture_plain_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('plain')
    with tmpfs(root / 'small', TMPFS_MEGABYTES) as small:
        with started(root, dict(node3=small / 'node3')) as cluster:
            yield Setup(cluster, root)


@pytest.fixture(name='plain_set', scope='module')
def fixture_plain_set(plain_setup):
    """A set taken by the stopped backend: the tests that refuse to restore it run first, then the restore."""
    return BackedUp(plain_setup, 'stopped', backup_max_skew_ms=STOPPED_MAX_SKEW_MS)


@needs()
def test_a_node_down_at_preflight_fails_the_set_before_any_snapshot(plain_setup):
    plain_setup.cluster.stop_node('node3')
    try:
        refused = plain_setup.ansible.playbook(BACKUP, dict(method='snapshot', backend='stopped'), expect_rc=2)
    finally:
        plain_setup.cluster.start_node('node3')
        wait_ready(plain_setup.cluster)

    [(task, host, message)] = [failure for failure in refused.failures() if failure[1] == 'node3' and not failure[0].startswith('Stop')]
    assert (task, host) == ("Check that this node's server is connected to the cluster", 'node3')
    assert message.startswith('Server node3 (node3) is not connected to the cluster (connected: node1, node2)')
    assert refused.results('Preflight every node (backend, free space, lock, clock)') == []
    assert refused.results(SNAPSHOT_TASK) == []
    assert 'node3: %s: Server node3 (node3) is not connected' % task in failed_set(plain_setup)['reason']
    assert_released(plain_setup)


def hold_locks(setup: Setup, run: dict | None, expires_at: float | None = None) -> tuple:
    """Every node's lock held by another set, as a backup of that run would hold it; returns (set id, locks)."""
    holder = new_set_id('snapshot')
    locks = [NodeLock(str(data_dir)) for data_dir in setup.data_dirs()]
    for lock, data_dir in zip(locks, setup.data_dirs()):
        lock.acquire(dict(set_id=holder, run=run, pid=os.getpid(), host='elsewhere', backend='stopped', data_dir=str(data_dir),
                          created_at='2026-11-24T16:30:00.000Z', expires_at=expires_at,
                          plan=dict(data_dir=str(data_dir), copy=str(data_dir) + '.snapshot-' + holder, read_path=str(data_dir),
                                    stop_command=['true'], start_command=['true'], freeze_timeout=300), phase='taken'))
    return holder, locks


@needs()
def test_a_second_backup_is_refused_by_locks_whose_run_may_still_run(plain_setup):
    """A lock held by a run of another controller, within its lease, cannot be tested: refused, lock kept."""
    other_controller = dict(host='another-controller', boot_id='x', pid=1, start_ticks=1)
    holder, locks = hold_locks(plain_setup, other_controller, expires_at=time.time() + 3600)
    held = [(Path(lock.path).read_bytes(), os.stat(lock.path).st_ino) for lock in locks]
    pids = plain_setup.pids()
    try:
        refused = plain_setup.ansible.playbook(BACKUP, dict(method='snapshot', backend='stopped'), expect_rc=2)
        after = [(Path(lock.path).read_bytes(), os.stat(lock.path).st_ino) for lock in locks]
    finally:
        for lock in locks:
            lock.release()

    refusals = [(host, message) for task, host, message in refused.failures() if task == LOCK_REFUSED_TASK]
    assert sorted(host for host, message in refusals) == list(NODES)
    assert all('Backup set %s holds the lock' % holder in message and 'another controller, which this one cannot test' in message
               for host, message in refusals), refusals
    assert after == held
    assert refused.results(SNAPSHOT_TASK) == []
    assert 'holds the lock' in failed_set(plain_setup)['reason']
    assert plain_setup.pids() == pids
    assert_released(plain_setup)


@needs()
def test_locks_of_a_run_that_is_gone_are_broken_and_the_backup_goes_on(plain_setup):
    """The locks of a run of this controller whose process is gone (as after a SIGKILL) are broken at the next
    backup's preflight, what that run took is released, its set is marked failed, and the backup succeeds."""
    finished = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True, check=True)
    gone = dict(host=socket.gethostname(), boot_id=Path('/proc/sys/kernel/random/boot_id').read_text().strip(),
                pid=int(finished.stdout), start_ticks=1)
    holder, locks = hold_locks(plain_setup, gone)
    left_copies = [Path(lock.read()['plan']['copy']) for lock in locks]
    for copy in left_copies:
        copy.mkdir()

    run = plain_setup.ansible.playbook(BACKUP, dict(method='snapshot', backend='stopped', backup_max_skew_ms=STOPPED_MAX_SKEW_MS))

    assert [result['changed'] for result in run.results('Release what the interrupted backup took, and its lock')] == [True] * 3
    assert not any(copy.exists() for copy in left_copies)
    assert run.result(COMMIT_TASK, 'node1')['changed']
    assert_released(plain_setup)


@needs()
def test_no_room_to_stage_a_part_is_refused_before_any_server_stops(plain_set):
    setup = plain_set.setup
    small = setup.cluster.node('node3').data_dir.parent
    filler = small / 'filler'
    before = state_of(setup)
    with open(filler, 'wb') as stream:
        os.posix_fallocate(stream.fileno(), 0, shutil.disk_usage(small).free - (16 << 20))
    try:
        refused = setup.ansible.playbook(RESTORE, expect_rc=2)
    finally:
        filler.unlink()

    failures = [(task, host) for task, host, message in refused.failures()]
    [message] = [message for task, host, message in refused.failures() if (task, host) == (STAGE_TASK, 'node3')]
    # The hosts of one task report in the order they finish.
    assert failures[0] == (STAGE_TASK, 'node3') and sorted(failures[1:]) == [(STAGE_REFUSED_TASK, node) for node in NODES]
    assert message.startswith('Not enough space to unpack part nodes/node3/data.tar.zst beside ')
    assert all('No server was stopped and no data directory was changed' in message for task, host, message in refused.failures()[1:])
    assert refused.results('Stop every server') == []
    assert state_of(setup)[0] == before[0]
    assert not any(name for name in state_of(setup)[1] if '.before-restore-' in name)
    assert_released(setup)
    assert_healthy(setup.cluster)


@needs()
def test_a_corrupt_part_is_refused_on_the_nodes_before_any_server_stops(plain_set):
    """Part damage found by the node that reads it, in the pass that would unpack it: every node stops there.
    (node3's part: the refused restore before this one left the others staged, and a run of the same restore
    reuses what it staged and checked.)"""
    setup = plain_set.setup
    [node3_part] = [part for part in plain_set.manifest['parts'] if part['server'] == 'node3']
    part = plain_set.set_dir / node3_part['path']
    original = part.read_bytes()
    before = state_of(setup)
    part.write_bytes(original[:1000] + bytes([original[1000] ^ 0xff]) + original[1001:])
    try:
        refused = setup.ansible.playbook(RESTORE, expect_rc=2)
    finally:
        part.write_bytes(original)

    [(task, host, message)] = [failure for failure in refused.failures() if failure[0] == STAGE_TASK]
    assert host == 'node3'
    assert 'zstd' in message or 'sha256' in message, message
    assert refused.results('Stop every server') == []
    assert all('No server was stopped and no data directory was changed' in message
               for task, host, message in refused.failures() if task == STAGE_REFUSED_TASK)
    assert state_of(setup)[0] == before[0]
    assert_healthy(setup.cluster)


def without_node3_part(set_dir: Path) -> None:
    """Take node3's part out of the manifest (the caller puts the file back)."""
    manifest_path = set_dir / 'manifest.json'
    manifest = json.loads(manifest_path.read_text())
    manifest['parts'] = [part for part in manifest['parts'] if part['server'] != 'node3']
    manifest_path.write_text(json.dumps(manifest))


@needs()
@pytest.mark.parametrize('mismatch', ['set without node3', 'inventory with node4'])
def test_a_set_and_an_inventory_that_differ_are_refused_before_anything_changes(plain_set, mismatch):
    setup = plain_set.setup
    before = state_of(setup)
    manifest_path = plain_set.set_dir / 'manifest.json'
    manifest_text = manifest_path.read_text()
    ansible = setup.ansible
    if mismatch == 'set without node3':
        without_node3_part(plain_set.set_dir)
    else:
        node4 = dict(setup.cluster.inventory()['all']['children']['rethinkdb']['hosts']['node3'], rethinkdb_server_name='node4',
                     rethinkdb_data_dir=str(setup.workdir / 'node4'), rethinkdb_stop_command=['false'], rethinkdb_start_command=['false'])
        ansible = setup.other_inventory('four', dict(node4=node4))
    try:
        refused = ansible.playbook(RESTORE, expect_rc=2)
    finally:
        manifest_path.write_text(manifest_text)

    [(task, host, message)] = refused.failures()
    missing = 'node3' if mismatch == 'set without node3' else 'node4'
    assert task == MATCH_TASK
    assert 'no part for %s; ' % missing in message and message.endswith('Nothing was changed.')
    assert refused.results(STAGE_TASK) == []
    assert_released(setup)
    assert_untouched(setup, before)


@needs()
def test_stopped_snapshot_restores_every_acknowledged_write(plain_set):
    setup = plain_set.setup
    damage(setup.cluster)
    setup.ansible.playbook(RESTORE)

    snapshot = assert_snapshot_record(plain_set.manifest, 'stopped', STOPPED_MAX_SKEW_MS)
    assert all(node['freeze_ms'] > 0 for node in snapshot['nodes']), snapshot
    assert_restored(plain_set)
