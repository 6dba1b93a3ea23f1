"""The watchdog as a real detached process: it acts at its deadline, at once when the process that armed it
dies, and never once cancelled."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import watchdog
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import Commands, SnapshotError
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.watchdog import Watchdog
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.conftest import real_run


def wait_for(path, seconds):
    """Seconds until path exists, or None if it does not within the time given."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if os.path.exists(path):
            return time.monotonic() - started
        time.sleep(0.01)
    return None


def wait_until_ended(pid):
    """Wait until a process has exited (gone, or a zombie nobody reaped yet)."""
    for dummy in range(300):
        try:
            with open('/proc/%d/stat' % pid, encoding='utf-8') as stat:
                if stat.read().rsplit(')', 1)[1].split()[0] == 'Z':
                    return
        except FileNotFoundError:
            return
        time.sleep(0.01)
    raise AssertionError('process %d still runs' % pid)


def open_descriptors() -> list:
    return sorted(os.listdir('/proc/self/fd'))


def test_the_watchdog_acts_at_its_deadline_from_a_session_of_its_own(tmp_path):
    marker = str(tmp_path / 'acted')
    armed_at = time.monotonic()

    armed = Watchdog(Commands(real_run), ['touch', marker], 0.5, 'thaw /srv')

    assert os.getsid(armed.pid) != os.getsid(0)
    assert os.readlink('/proc/%d/cwd' % armed.pid) == '/'
    assert wait_for(marker, 3) is not None
    assert 0.5 <= time.monotonic() - armed_at < 3.0
    wait_until_ended(armed.pid)
    assert armed.cancel() is False


def test_a_cancelled_watchdog_does_nothing_and_ends(tmp_path):
    marker = str(tmp_path / 'acted')
    descriptors = open_descriptors()
    armed = Watchdog(Commands(real_run), ['touch', marker], 30, 'start the server')

    assert armed.cancel() is True

    wait_until_ended(armed.pid)
    assert not os.path.exists(marker)
    assert open_descriptors() == descriptors


@pytest.mark.parametrize('ending', ['os.kill(os.getpid(), signal.SIGKILL)', 'sys.exit(0)'], ids=['killed', 'exited'])
def test_the_watchdog_acts_at_once_when_its_owner_dies_and_holds_no_output_pipe(tmp_path, ending):
    """The module's death (or an exit without cancelling) acts at once; and the watchdog must not keep the
    module's stdout open, or Ansible would wait for it (subprocess.run returns only when stdout closes)."""
    marker = str(tmp_path / 'acted')
    owner = ('import os, signal, sys\n'
             'from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import Commands\n'
             'from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.watchdog import Watchdog\n'
             'from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.conftest import real_run\n'
             'armed = Watchdog(Commands(real_run), ["touch", %r], 60, "start the server")\n'
             'print(armed.pid, flush=True)\n%s\n' % (marker, ending))
    started = time.monotonic()

    finished = subprocess.run([sys.executable, '-c', owner], capture_output=True, timeout=30, check=False,
                              env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))

    assert time.monotonic() - started < 20
    pid = int(finished.stdout.split()[0])
    assert wait_for(marker, 3) is not None
    wait_until_ended(pid)


def test_the_action_is_resolved_and_passed_with_the_deadline(run, commands):
    run.answer([sys.executable], stdout='4242\n')
    descriptors = open_descriptors()
    before = time.monotonic()

    armed = Watchdog(commands, ['fsfreeze', '--unfreeze', '/srv'], 30, 'thaw /srv')

    [argv] = run.calls
    assert argv[:6] == [sys.executable, '-I', '-S', '-B', '-c', watchdog.WATCHER]
    assert before + 29 < float(argv[7]) < time.monotonic() + 31
    assert argv[8:] == ['fsfreeze', '--unfreeze', '/srv']
    assert run.options[0]['pass_fds'] == (int(argv[6]),)
    assert armed.pid == 4242
    assert armed.cancel() is False
    assert open_descriptors() == descriptors


def test_a_watchdog_that_does_not_start_says_so_and_leaks_nothing(run, commands):
    descriptors = open_descriptors()
    run.answer([sys.executable], stdout='Traceback: boom\n')

    with pytest.raises(SnapshotError) as silent:
        Watchdog(commands, ['systemctl', 'start', 'rethinkdb'], 30, 'start the server')
    assert str(silent.value) == 'The watchdog that would start the server did not start; nothing was done.'
    assert open_descriptors() == descriptors

    run.rules.insert(0, ([sys.executable], 1, '', 'MemoryError\n'))
    with pytest.raises(SnapshotError) as failed:
        Watchdog(commands, ['systemctl', 'start', 'rethinkdb'], 30, 'start the server')
    assert str(failed.value) == 'Cannot start the watchdog that would start the server: %s exited with 1: MemoryError' % sys.executable
    assert open_descriptors() == descriptors


def test_a_watchdog_whose_action_is_not_installed_is_not_started(run):
    commands = Commands(run, locate=lambda name: None if name == 'fsfreeze' else name)

    with pytest.raises(SnapshotError, match='^The fsfreeze command is not installed on this node.$'):
        Watchdog(commands, ['fsfreeze', '--unfreeze', '/srv'], 30, 'thaw /srv')
    assert run.calls == []
