"""What a scratch cluster leaves and how it goes, on real processes: servers found by their pid files (never a
process that merely has the pid now), stopped or killed, the controller run tested, and the keeper, a detached
process that removes the scratch cluster once its run is gone or its lifetime is over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import scratch_keeper
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.controller_run import describe_run
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.scratch_cluster import Scratch, create, launch_keeper
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import Commands
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.conftest import real_run

# A stand-in server: names its data directory on its command line, and ignores SIGTERM when told to.
SERVER = ('import signal, sys, time\nif sys.argv[2] == "stubborn":\n    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n'
          'print("up", flush=True)\ntime.sleep(600)\n')


class Servers:
    """Stand-in servers started under a scratch directory, each with its pid file; all killed afterwards."""

    def __init__(self, scratch: str):
        self.scratch = scratch
        self.processes = []

    def start(self, name: str, mode: str = 'polite', pid_file_name: str = scratch_keeper.PID_FILE) -> subprocess.Popen:
        directory = os.path.join(self.scratch, name)
        os.makedirs(directory, exist_ok=True)
        process = subprocess.Popen([sys.executable, '-c', SERVER, os.path.join(directory, 'data'), mode], stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline() == 'up\n'
        self.processes.append(process)
        with open(os.path.join(directory, pid_file_name), 'w', encoding='ascii') as pid_file:
            pid_file.write('%d\n' % process.pid)
        return process

    def cleanup(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()
            process.stdout.close()


@pytest.fixture(name='servers')
def fixture_servers(tmp_path):
    started = Servers(str(tmp_path / 'scratch'))
    yield started
    started.cleanup()


def test_servers_are_found_by_their_pid_files_and_command_lines(servers, tmp_path):
    first = servers.start('node1')
    servers.start('node2')
    stranger = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])
    try:
        os.makedirs(tmp_path / 'scratch' / 'node3')
        (tmp_path / 'scratch' / 'node3' / scratch_keeper.PID_FILE).write_text('%d\n' % stranger.pid)
        (tmp_path / 'scratch' / 'node4').mkdir()
        (tmp_path / 'scratch' / 'node4' / scratch_keeper.PID_FILE).write_text('not a pid\n')

        found = scratch_keeper.server_pids(str(tmp_path / 'scratch'))
    finally:
        stranger.kill()
        stranger.wait()

    assert sorted(found) == ['node1', 'node2'] and found['node1'] == first.pid
    assert scratch_keeper.server_pids(str(tmp_path / 'nowhere')) == {}


def test_stopping_terms_every_server_and_kills_one_that_will_not_stop(servers, tmp_path):
    polite = servers.start('node1')
    stubborn = servers.start('node2', 'stubborn')

    outcome = scratch_keeper.stop_servers(str(tmp_path / 'scratch'), timeout=0.5)

    assert outcome == dict(stopped=['node1', 'node2'], killed=['node2'])
    assert polite.wait(5) == -signal.SIGTERM and stubborn.wait(5) == -signal.SIGKILL


def test_remove_leaves_nothing(servers, tmp_path):
    servers.start('node1')

    outcome = scratch_keeper.remove(str(tmp_path / 'scratch'))

    assert outcome == dict(stopped=['node1'], killed=[], removed=True)
    assert not (tmp_path / 'scratch').exists()


@pytest.fixture(name='child_run')
def fixture_child_run():
    """A run record of a child process that still runs; killed afterwards."""
    child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])
    run = dict(describe_run(), pid=child.pid, start_ticks=scratch_keeper.start_ticks(child.pid))
    yield child, run
    child.kill()
    child.wait()


def test_a_run_is_gone_once_its_process_ended_or_the_host_rebooted(child_run):
    child, run = child_run
    assert scratch_keeper.run_gone(run) is False
    assert scratch_keeper.run_gone(dict(run, boot_id='an earlier boot')) is True
    assert scratch_keeper.run_gone(dict(run, start_ticks=run['start_ticks'] + 1)) is True, 'a later process with the same pid'
    assert scratch_keeper.run_gone(dict(run, host=socket.gethostname() + '-other')) is False, 'another host cannot be tested here'
    assert scratch_keeper.run_gone(None) is False
    child.kill()
    child.wait()
    assert scratch_keeper.run_gone(run) is True


def test_due_when_the_lifetime_is_over_or_the_run_is_gone(child_run):
    dummy, run = child_run
    record = dict(run=run, expires_at=1000.0)
    assert scratch_keeper.due(record, 999.0) is False
    assert scratch_keeper.due(record, 1000.0) is True
    assert scratch_keeper.due(dict(record, run=dict(run, boot_id='an earlier boot')), 999.0) is True
    assert scratch_keeper.due(None, 2000.0) is False


def wait_gone(path, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def keeper_running(record: dict) -> bool:
    return scratch_keeper.is_process(record['keeper'])


def made(tmp_path, run: dict, lifetime: int) -> tuple:
    """A scratch cluster with one stand-in server and its keeper, as the module makes them."""
    scratch = Scratch(str(tmp_path / 'rehearsals'), 'r1')
    record = launch_keeper(Commands(real_run), scratch, create(scratch, ['node1'], run, lifetime))
    return scratch, record


def test_the_keeper_removes_the_scratch_cluster_once_its_run_is_gone(tmp_path, child_run):
    child, run = child_run
    scratch, record = made(tmp_path, run, 3600)
    servers = Servers(scratch.path)
    try:
        server = servers.start('node1')
        time.sleep(1.5)
        assert keeper_running(record) and os.getsid(record['keeper']['pid']) != os.getsid(0)
        assert os.path.isdir(scratch.path)

        child.kill()
        child.wait()

        assert wait_gone(scratch.path), 'the keeper removes the scratch cluster within a few seconds of its run'
        assert server.wait(5) == -signal.SIGTERM
    finally:
        servers.cleanup()
    time.sleep(0.2)
    assert not keeper_running(record)


def test_the_keeper_removes_the_scratch_cluster_at_the_end_of_its_lifetime(tmp_path, child_run):
    dummy, run = child_run
    scratch, record = made(tmp_path, run, 2)

    assert json.loads(Path(scratch.run_file).read_text())['keeper'] == record['keeper']
    assert wait_gone(scratch.path)
    time.sleep(0.2)
    assert not keeper_running(record)


def test_ending_the_keeper_leaves_the_scratch_cluster_to_the_caller(tmp_path, child_run):
    dummy, run = child_run
    scratch, record = made(tmp_path, run, 3600)

    assert scratch_keeper.end_keeper(scratch.path) is True

    assert not keeper_running(record) and os.path.isdir(scratch.path)
    assert scratch_keeper.end_keeper(scratch.path) is False


def test_the_keeper_program_wants_an_absolute_directory():
    program = Path(scratch_keeper.__file__).read_text()
    refused = subprocess.run([sys.executable, '-I', '-S', '-B', '-c', program, 'watch', 'relative/dir'], capture_output=True, text=True, check=False)
    assert (refused.returncode, refused.stderr) == (2, 'usage: watch <absolute scratch directory>\n')
