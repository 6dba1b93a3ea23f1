"""Snapshots on real filesystems: btrfs and XFS on loop devices (root only), the fsfreeze watchdog after the
module is killed, and the stopped backend around a running dummy server; each archive restored with
data_restore and compared with what the snapshot captured."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.modules import data_restore, snapshot, snapshot_info
from ansible_collections.bigchaindb.rethinkdb.tests.harness.loopfs import loop_filesystem
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.fake_reql import run_module

SET_ID = '20261124T163000Z-snapshot-3f9a'
RESTORE_ID = '20261202T051500Z-a1b2'
TOOLS = ('losetup', 'mount', 'umount', 'mkfs.btrfs', 'mkfs.xfs', 'btrfs', 'fsfreeze')
needs_loop_devices = pytest.mark.skipif(os.geteuid() != 0 or not all(shutil.which(tool) for tool in TOOLS),
                                        reason='needs root, loop devices, btrfs-progs, xfsprogs and fsfreeze')


def fill(data_dir):
    """A small RethinkDB-like data directory: one large table file, a few small ones."""
    os.makedirs(os.path.join(data_dir, 'tmp'))
    with open(os.path.join(data_dir, 'table.data'), 'wb') as stream:
        for block in range(20):
            stream.write((b'{"id": %d, "block": "%s"}\n' % (block, b'ab' * 40)) * 12000)
    for number in range(5):
        with open(os.path.join(data_dir, 'tmp', 'small-%d' % number), 'wb') as stream:
            stream.write(os.urandom(3000))
    with open(os.path.join(data_dir, 'metadata'), 'wb') as stream:
        stream.write(b'metadata' * 512)


class Appender(threading.Thread):
    """Appends numbered lines to a file until stopped, syncing each, as a database writes its log."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.stopping = threading.Event()
        self.synced = 0

    def run(self):
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            while not self.stopping.is_set():
                os.write(fd, b'line %08d\n' % self.synced)
                os.fdatasync(fd)
                self.synced += 1
                time.sleep(0.001)
        finally:
            os.close(fd)

    def stop(self):
        self.stopping.set()
        self.join(10)


def assert_crash_consistent(captured_path, live_path, synced_before):
    """The captured log is what a power cut would have left: whole lines in order, a prefix of the live log,
    holding at least every line synced before the snapshot was asked for. (Lines written but not yet synced
    may be missing: a btrfs snapshot, like a crash, need not hold them.)"""
    with open(captured_path, 'rb') as captured, open(live_path, 'rb') as live:
        captured_bytes, live_bytes = captured.read(), live.read()
    lines = captured_bytes.splitlines()
    assert live_bytes.startswith(captured_bytes) and len(live_bytes) > len(captured_bytes)
    assert lines == [b'line %08d' % number for number in range(len(lines))]
    assert len(lines) >= synced_before > 0


def archive_and_compare(args, read_path, tmp_path, capsys):
    """Archive the snapshot, restore the archive with data_restore, and compare with the snapshot."""
    dest = str(tmp_path / 'out' / 'data.tar.zst')
    archived = run_module(snapshot.main, dict(args, state='archived', dest=dest, server='node1'), capsys)
    assert archived['changed'] is True and archived['part']['raw_bytes'] > 0
    restored_dir = str(tmp_path / 'restored' / 'default')
    os.makedirs(os.path.dirname(restored_dir))
    restore = dict(data_dir=restored_dir, restore_id=RESTORE_ID)
    staged = run_module(data_restore.main, dict(restore, archive=dest, part=archived['part'], set_id=SET_ID), capsys)
    swapped = run_module(data_restore.main, dict(restore, state='swapped'), capsys)
    assert staged['changed'] is True and staged['raw_bytes'] == archived['part']['raw_bytes']
    assert swapped['changed'] is True and swapped['moved_aside_to'] is None
    assert subprocess.run(['diff', '-r', '--no-dereference', read_path, restored_dir], capture_output=True, check=False).returncode == 0
    assert os.stat(read_path).st_mode == os.stat(restored_dir).st_mode


@needs_loop_devices
def test_btrfs_snapshot_of_a_subvolume_while_a_writer_appends(tmp_path, capsys):
    with loop_filesystem(tmp_path / 'mnt', 'btrfs', 128) as mountpoint:
        subvolume = os.path.join(mountpoint, 'rethinkdb')
        subprocess.run(['btrfs', 'subvolume', 'create', subvolume], check=True, stdout=subprocess.DEVNULL)
        data_dir = os.path.join(subvolume, 'default')
        fill(data_dir)
        writer = Appender(os.path.join(data_dir, 'log_file'))
        writer.start()
        args = dict(data_dir=data_dir, set_id=SET_ID, backend='btrfs')
        try:
            checked = run_module(snapshot_info.main, args, capsys)
            time.sleep(0.1)
            at = time.time() + 0.3
            synced_before = writer.synced
            taken = run_module(snapshot.main, dict(args, state='present', at=at), capsys)
            time.sleep(0.05)
        finally:
            writer.stop()

        assert checked['problems'] == []
        # How late and how long are figures for make bench; here only their meaning is checked.
        assert taken['changed'] is True and taken['taken_at'] >= at and taken['late_ms'] >= 0
        assert taken['took_ms'] > 0 and taken['freeze_ms'] == 0.0
        read_path = taken['snapshot']['read_path']
        assert taken['snapshot']['subvolume'] == subvolume
        assert read_path == os.path.join(subvolume, 'default.snapshot-' + SET_ID, 'default')
        assert_crash_consistent(os.path.join(read_path, 'log_file'), os.path.join(data_dir, 'log_file'), synced_before)
        with pytest.raises(OSError, match='Read-only file system'):
            os.open(os.path.join(read_path, 'new'), os.O_CREAT | os.O_WRONLY)

        archive_and_compare(args, read_path, tmp_path, capsys)

        released = run_module(snapshot.main, dict(args, state='absent'), capsys)
        assert released['released'][0] == 'delete the btrfs snapshot %s' % os.path.dirname(read_path)
        assert not os.path.exists(os.path.dirname(read_path))
        assert sorted(os.listdir(subvolume)) == ['default']


@needs_loop_devices
def test_btrfs_snapshot_of_a_data_directory_that_is_a_subvolume_lands_beside_it(tmp_path, capsys):
    with loop_filesystem(tmp_path / 'mnt', 'btrfs', 128) as mountpoint:
        data_dir = os.path.join(mountpoint, 'default')
        subprocess.run(['btrfs', 'subvolume', 'create', data_dir], check=True, stdout=subprocess.DEVNULL)
        fill(data_dir)
        args = dict(data_dir=data_dir, set_id=SET_ID, backend='btrfs')

        taken = run_module(snapshot.main, dict(args, state='present'), capsys)

        assert taken['snapshot']['read_path'] == os.path.join(mountpoint, 'default.snapshot-' + SET_ID)
        with open(os.path.join(taken['snapshot']['read_path'], 'metadata'), 'rb') as metadata:
            assert metadata.read() == b'metadata' * 512
        run_module(snapshot.main, dict(args, state='absent'), capsys)
        assert sorted(os.listdir(mountpoint)) == ['default']


@needs_loop_devices
def test_fsfreeze_copies_to_another_filesystem_while_writes_wait(tmp_path, capsys):
    staging = tmp_path / 'staging'
    staging.mkdir()
    with loop_filesystem(tmp_path / 'mnt', 'xfs', 300) as mountpoint:
        data_dir = os.path.join(mountpoint, 'default')
        fill(data_dir)
        writer = Appender(os.path.join(data_dir, 'log_file'))
        writer.start()
        args = dict(data_dir=data_dir, set_id=SET_ID, backend='fsfreeze', staging_dir=str(staging), freeze_timeout=60)
        try:
            same_filesystem = run_module(snapshot_info.main, dict(args, staging_dir=str(mountpoint)), capsys)
            time.sleep(0.1)
            synced_before = writer.synced
            taken = run_module(snapshot.main, dict(args, state='present', at=time.time() + 0.2), capsys)
            time.sleep(0.05)
        finally:
            writer.stop()

        assert [problem for problem in same_filesystem['problems'] if 'is on the filesystem that fsfreeze freezes' in problem]
        assert taken['changed'] is True and 0 < taken['freeze_ms'] <= taken['took_ms']
        read_path = taken['snapshot']['read_path']
        assert read_path == str(staging / ('default.snapshot-' + SET_ID))
        assert_crash_consistent(os.path.join(read_path, 'log_file'), os.path.join(data_dir, 'log_file'), synced_before)

        archive_and_compare(args, read_path, tmp_path, capsys)

        released = run_module(snapshot.main, dict(args, state='absent'), capsys)
        assert released['released'] == ['remove the copy %s' % read_path, 'remove the lock %s.backup-lock' % data_dir]
        assert os.listdir(str(staging)) == []


FROZEN_MODULE = textwrap.dedent('''
    """Freezes a filesystem like the module does, then 'copies' forever (until killed)."""
    import subprocess, sys, time
    from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import Commands
    from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_fsfreeze import FsfreezeSnapshot

    def run(argv, **options):
        if argv[0].endswith('cp'):
            print('copying', flush=True)
            time.sleep(600)
        done = subprocess.run(argv, capture_output=True, text=True, pass_fds=options.get('pass_fds', ()))
        return done.returncode, done.stdout, done.stderr

    data_dir, staging, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
    commands = Commands(run)
    backend = FsfreezeSnapshot(FsfreezeSnapshot.make_plan(data_dir, 'S', dict(staging_dir=staging, freeze_timeout=timeout), commands), commands)
    backend.prepare(None, lambda **fields: None)
    backend.take(lambda **fields: None)
''')


def seconds_until_writable(path, started, limit):
    """Seconds from `started` until a write to path completes (it blocks while the filesystem is frozen)."""
    writer = subprocess.Popen([sys.executable, '-c', 'import sys; open(sys.argv[1], "w").write("thawed")', path])
    try:
        writer.wait(limit)
    except subprocess.TimeoutExpired:
        return None
    return time.monotonic() - started


@needs_loop_devices
@pytest.mark.parametrize('kill', [True, False], ids=['module-killed', 'module-stuck'])
def test_watchdog_thaws_when_the_module_dies_or_outlasts_freeze_timeout(tmp_path, kill):
    staging = tmp_path / 'staging'
    staging.mkdir()
    freeze_timeout = 2.0
    with loop_filesystem(tmp_path / 'mnt', 'xfs', 300) as mountpoint:
        data_dir = os.path.join(mountpoint, 'default')
        os.mkdir(data_dir)
        module = subprocess.Popen([sys.executable, '-c', FROZEN_MODULE, data_dir, str(staging), str(freeze_timeout)],
                                  stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
        try:
            assert module.stdout.readline().strip() == 'copying'
            frozen_at = time.monotonic()
            if kill:
                module.send_signal(signal.SIGKILL)
            thawed_after = seconds_until_writable(os.path.join(mountpoint, 'probe'), frozen_at, freeze_timeout + 5)
        finally:
            module.kill()
            module.wait()

        assert thawed_after is not None
        if kill:
            assert thawed_after < 1.0
        else:
            assert freeze_timeout - 0.5 < thawed_after < freeze_timeout + 1.0


DUMMY_SERVER = textwrap.dedent('''
    """A stand-in server: `start` runs it detached (appending to <data>/log_file), `stop` ends it and waits."""
    import os, signal, subprocess, sys, time
    action, data_dir, pid_file = sys.argv[1:4]
    if action == 'start':
        process = subprocess.Popen([sys.executable, sys.argv[0], 'serve', data_dir, pid_file], start_new_session=True,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(pid_file, 'w') as stream:
            stream.write(str(process.pid))
    elif action == 'stop':
        with open(pid_file) as stream:
            pid = int(stream.read())
        os.kill(pid, signal.SIGTERM)
        while os.path.exists('/proc/%d' % pid) and open('/proc/%d/stat' % pid).read().split()[2] != 'Z':
            time.sleep(0.01)
    else:
        number = 0
        with open(os.path.join(data_dir, 'log_file'), 'ab', buffering=0) as log:
            while True:
                log.write(b'line %08d\\n' % number)
                number += 1
                time.sleep(0.002)
''')


def test_stopped_copies_a_quiet_data_directory_and_starts_the_server_again(tmp_path, capsys):
    data_dir = tmp_path / 'default'
    data_dir.mkdir()
    server = tmp_path / 'server.py'
    server.write_text(DUMMY_SERVER)
    pid_path = tmp_path / 'server.pid'
    pid_file = str(pid_path)
    control = [sys.executable, str(server)]
    subprocess.run(control + ['start', str(data_dir), pid_file], check=True)
    args = dict(data_dir=str(data_dir), set_id=SET_ID, backend='stopped', stop_command=control + ['stop', str(data_dir), pid_file],
                start_command=control + ['start', str(data_dir), pid_file])
    try:
        time.sleep(0.2)
        first_pid = pid_path.read_text()
        taken = run_module(snapshot.main, dict(args, state='present'), capsys)
        time.sleep(0.2)
    finally:
        subprocess.run(args['stop_command'], check=False)

    copy = taken['snapshot']['read_path']
    assert taken['changed'] is True and taken['freeze_ms'] > 0
    assert pid_path.read_text() != first_pid
    with open(os.path.join(copy, 'log_file'), 'rb') as captured, open(str(data_dir / 'log_file'), 'rb') as live:
        captured_bytes, live_bytes = captured.read(), live.read()
    assert captured_bytes.endswith(b'\n') and len(live_bytes) > len(captured_bytes) and live_bytes.startswith(captured_bytes)
    run_module(snapshot.main, dict(args, state='absent'), capsys)
    assert not os.path.exists(copy)
