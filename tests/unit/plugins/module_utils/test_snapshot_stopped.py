"""stopped backend: stop, copy, start, with the start run whatever happened before it, and a watchdog that
starts the server if the module dies while it is down or the copy outlasts freeze_timeout (for real, in a
process that is killed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import snapshot_stopped
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import Commands, SnapshotError
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_stopped import StoppedSnapshot
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.conftest import real_run
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.module_utils.test_watchdog import wait_until_ended

SET_ID = '20261124T163000Z-snapshot-3f9a'
STOP = ['systemctl', 'stop', 'rethinkdb@default']
START = ['systemctl', 'start', 'rethinkdb@default']


class FakeWatchdog:
    """Records how the backend treats its watchdog; `acted` says whether it started the server itself."""

    instances: list = []
    acted = False

    def __init__(self, commands, action, seconds, purpose):
        self.action = action
        self.seconds = seconds
        self.purpose = purpose
        self.pid = 4242
        self.start_ticks = 99
        self.cancelled = False
        FakeWatchdog.instances.append(self)

    def record(self):
        return dict(pid=self.pid, start_ticks=self.start_ticks)

    def cancel(self):
        self.cancelled = True
        return not FakeWatchdog.acted


@pytest.fixture(name='backend')
def stopped_backend(tmp_path, commands, monkeypatch):
    (tmp_path / 'default').mkdir()
    FakeWatchdog.instances = []
    FakeWatchdog.acted = False
    monkeypatch.setattr(snapshot_stopped, 'Watchdog', FakeWatchdog)
    options = dict(staging_dir=None, service='rethinkdb@default', freeze_timeout=120.0)
    return StoppedSnapshot(StoppedSnapshot.make_plan(str(tmp_path / 'default'), SET_ID, options, commands), commands)


def take(backend):
    recorded = []
    return recorded, backend.take(lambda **fields: recorded.append(fields))


def test_stop_copy_start_under_a_watchdog(backend, run, tmp_path):
    recorded, taken = take(backend)

    copy = str(tmp_path / ('default.snapshot-' + SET_ID))
    assert run.calls == [STOP, ['cp', '-a', '--', str(tmp_path / 'default'), copy], START]
    assert recorded == [{'server_stopped': True, 'watchdog': {'pid': 4242, 'start_ticks': 99}}, {'server_stopped': False}]
    [watchdog] = FakeWatchdog.instances
    assert (watchdog.action, watchdog.seconds, watchdog.purpose, watchdog.cancelled) == (START, 120.0, 'start the server', True)
    assert taken['freeze_ms'] >= 0 and abs(taken['taken_at'] - time.time()) < 5
    assert backend.read_path() == copy
    assert backend.plan == dict(data_dir=str(tmp_path / 'default'), copy=copy, read_path=copy, stop_command=STOP, start_command=START,
                                freeze_timeout=120.0)


def test_stop_and_start_commands_instead_of_a_unit(tmp_path, commands, run, monkeypatch):
    monkeypatch.setattr(snapshot_stopped, 'Watchdog', FakeWatchdog)
    options = dict(staging_dir=str(tmp_path), stop_command=['/usr/local/bin/rdb', 'stop'], start_command=['/usr/local/bin/rdb', 'start'],
                   freeze_timeout=60.0)
    backend = StoppedSnapshot(StoppedSnapshot.make_plan(str(tmp_path / 'default'), SET_ID, options, commands), commands)

    take(backend)

    assert [call[:2] for call in run.calls] == [['/usr/local/bin/rdb', 'stop'], ['cp', '-a'], ['/usr/local/bin/rdb', 'start']]
    assert FakeWatchdog.instances[-1].action == ['/usr/local/bin/rdb', 'start']


def test_a_failed_copy_still_starts_the_server(backend, run):
    run.answer(['cp'], rc=1, stderr='cp: error writing: No space left on device\n')

    with pytest.raises(SnapshotError, match='^Cannot copy .*: cp exited with 1: cp: error writing: No space left on device$'):
        take(backend)

    assert run.calls[-1] == START and FakeWatchdog.instances[0].cancelled


def test_a_failed_stop_still_starts_and_copies_nothing(backend, run):
    run.answer(STOP, rc=1, stderr='Failed to stop rethinkdb@default.service: Unit not loaded.\n')

    with pytest.raises(SnapshotError) as failed:
        take(backend)

    assert str(failed.value) == 'Cannot stop the server: systemctl exited with 1: Failed to stop rethinkdb@default.service: Unit not loaded.'
    assert run.calls == [STOP, START]


def test_a_failed_start_is_reported_with_the_earlier_failure_and_the_lock_says_stopped(backend, run):
    run.answer(['cp'], rc=1, stderr='cp: boom\n').answer(START, rc=1, stderr='Job failed.\n')

    recorded = []
    with pytest.raises(SnapshotError) as failure:
        backend.take(lambda **fields: recorded.append(fields))

    assert str(failure.value).startswith('Cannot start the server: systemctl exited with 1: Job failed. (before that: Cannot copy')
    assert failure.value.details['argv'] == START
    assert recorded == [{'server_stopped': True, 'watchdog': {'pid': 4242, 'start_ticks': 99}}]
    assert FakeWatchdog.instances[0].cancelled


def test_a_copy_that_outlasts_freeze_timeout_is_not_consistent(backend, run):
    FakeWatchdog.acted = True

    recorded = []
    with pytest.raises(SnapshotError) as overran:
        backend.take(lambda **fields: recorded.append(fields))

    assert str(overran.value) == ('The server was down for longer than freeze_timeout (120.0s): the watchdog started it during the copy, '
                                  'so the copy is not consistent. Raise freeze_timeout.')
    assert run.calls[-1] == START


def test_release_leaves_the_server_to_its_watchdog(backend, run):
    """A lock that names a watchdog: the watchdog started the server when the module that stopped it ended."""
    os.mkdir(backend.plan['copy'])

    done = backend.release({'server_stopped': True, 'watchdog': {'pid': 4242, 'start_ticks': 99}})

    assert done == ['remove the copy %s' % backend.plan['copy']]
    assert run.calls == [] and not os.path.exists(backend.plan['copy'])


def test_release_starts_a_server_that_an_earlier_version_left_stopped(backend, run):
    """A lock without a watchdog (written before there was one): release starts the server itself."""
    os.mkdir(backend.plan['copy'])

    planned = backend.release({'server_stopped': True}, dry_run=True)
    assert run.calls == [] and os.path.isdir(backend.plan['copy'])
    done = backend.release({'server_stopped': True})

    assert planned == done == ['start the server (systemctl start rethinkdb@default)', 'remove the copy %s' % backend.plan['copy']]
    assert run.calls == [START] and not os.path.exists(backend.plan['copy'])
    assert backend.release({'server_stopped': False}) == []


def test_how_to_stop_and_start_is_required(tmp_path, commands):
    with pytest.raises(SnapshotError) as refused:
        StoppedSnapshot.make_plan(str(tmp_path), SET_ID, dict(staging_dir=None, stop_command=STOP, start_command=None,
                                                              freeze_timeout=1.0), commands)

    assert str(refused.value) == ('Say how to stop and start the server: service (a systemd unit), or stop_command and start_command '
                                  '(argument lists).')


def test_a_missing_staging_dir_is_refused(tmp_path, commands):
    with pytest.raises(SnapshotError, match='^staging_dir %s is not a directory.$' % (tmp_path / 'none')):
        StoppedSnapshot.make_plan(str(tmp_path / 'default'), SET_ID, dict(staging_dir=str(tmp_path / 'none'), service='x',
                                                                          freeze_timeout=1.0), commands)


def test_commands_that_are_not_installed_are_problems(tmp_path, run):
    commands = Commands(run, locate=lambda name: None if name == 'systemctl' else name)
    options = dict(staging_dir=None, service='rethinkdb@default', freeze_timeout=1.0)
    backend = StoppedSnapshot(StoppedSnapshot.make_plan(str(tmp_path), SET_ID, options, commands), commands)

    assert backend.problems() == ['The systemctl command is not installed on this node.']


# --- with the real watchdog ------------------------------------------------------------------------------------

SLOW_COPY = textwrap.dedent('''
    def run(argv, **options):
        """run_command, with `cp` taking `copy_seconds` (the module is killed during it, or overruns)."""
        if argv[0].endswith('/cp'):
            print('copying', flush=True)
            time.sleep(copy_seconds)
        done = subprocess.run(argv, capture_output=True, text=True, pass_fds=options.get('pass_fds', ()))
        return done.returncode, done.stdout, done.stderr
''')
MODULE = textwrap.dedent('''
    """Takes a stopped snapshot as the module does, its copy taking as long as asked."""
    import subprocess, sys, time
    from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import Commands
    from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_stopped import StoppedSnapshot
    data_dir, log, freeze_timeout, copy_seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
''') + SLOW_COPY + textwrap.dedent('''
    server = ['sh', '-c', 'echo "$2" >> "$1"', 'server', log]
    options = dict(staging_dir=None, stop_command=server + ['stop'], start_command=server + ['start'], freeze_timeout=freeze_timeout)
    commands = Commands(run)
    backend = StoppedSnapshot(StoppedSnapshot.make_plan(data_dir, 'S', options, commands), commands)
    try:
        backend.take(lambda **fields: None)
    except Exception as exc:
        print(exc, flush=True)
''')


def server_log(path) -> list:
    return path.read_text().split() if path.exists() else []


def wait_for_lines(path, count, seconds) -> list:
    started = time.monotonic()
    while time.monotonic() - started < seconds and len(server_log(path)) < count:
        time.sleep(0.02)
    return server_log(path)


def test_the_watchdog_starts_the_server_when_the_module_dies_mid_copy(tmp_path):
    (tmp_path / 'default').mkdir()
    log = tmp_path / 'server.log'
    module = subprocess.Popen([sys.executable, '-c', MODULE, str(tmp_path / 'default'), str(log), '60', '600'], stdout=subprocess.PIPE,
                              text=True, start_new_session=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    try:
        assert module.stdout.readline().strip() == 'copying'
        assert server_log(log) == ['stop']
        killed_at = time.monotonic()
        os.killpg(module.pid, signal.SIGKILL)
        started = wait_for_lines(log, 2, 10)
    finally:
        if module.poll() is None:
            os.killpg(module.pid, signal.SIGKILL)
        module.wait()
        module.stdout.close()

    assert started == ['stop', 'start']
    assert time.monotonic() - killed_at < 5


def test_the_watchdog_starts_the_server_when_the_copy_overruns(tmp_path):
    (tmp_path / 'default').mkdir()
    log = tmp_path / 'server.log'

    finished = subprocess.run([sys.executable, '-c', MODULE, str(tmp_path / 'default'), str(log), '0.6', '1.6'], capture_output=True,
                              text=True, timeout=60, check=False, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))

    assert finished.stdout.splitlines() == ['copying', 'The server was down for longer than freeze_timeout (0.6s): the watchdog started '
                                            'it during the copy, so the copy is not consistent. Raise freeze_timeout.']
    assert server_log(log) == ['stop', 'start', 'start']


def test_a_copy_within_freeze_timeout_leaves_the_watchdog_idle(tmp_path):
    (tmp_path / 'default').mkdir()
    log = tmp_path / 'server.log'
    commands = Commands(real_run)
    server = ['sh', '-c', 'echo "$2" >> "$1"', 'server', str(log)]
    options = dict(staging_dir=None, stop_command=server + ['stop'], start_command=server + ['start'], freeze_timeout=30.0)
    backend = StoppedSnapshot(StoppedSnapshot.make_plan(str(tmp_path / 'default'), SET_ID, options, commands), commands)
    recorded = []

    backend.take(lambda **fields: recorded.append(fields))
    wait_until_ended(recorded[0]['watchdog']['pid'])

    assert server_log(log) == ['stop', 'start']
    assert os.path.isdir(backend.read_path())
