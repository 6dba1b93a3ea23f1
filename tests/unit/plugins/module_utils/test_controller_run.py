"""Who runs a backup or restore: the ansible-playbook process found among this process's ancestors, and
whether a recorded run is alive, gone or unknown, tested on real processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.controller_run import describe_run, run_state

DESCRIBE = textwrap.dedent('''
    import json, sys, time
    from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.controller_run import describe_run
    print(json.dumps(describe_run()), flush=True)
    if len(sys.argv) > 1:
        time.sleep(float(sys.argv[1]))
''')


def environment() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))


def boot_id() -> str:
    with open('/proc/sys/kernel/random/boot_id', encoding='utf-8') as stream:
        return stream.read().strip()


@pytest.fixture(name='described_child')
def running_child():
    """A child process that described its own run and keeps running; killed and reaped afterwards."""
    child = subprocess.Popen([sys.executable, '-c', DESCRIBE, '60'], stdout=subprocess.PIPE, text=True, env=environment())
    try:
        yield child, json.loads(child.stdout.readline())
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


def test_describe_run_outside_ansible_playbook_names_this_process():
    before = time.time()

    run = describe_run()

    assert sorted(run) == ['boot_id', 'described_at', 'host', 'pid', 'start_ticks']
    assert (run['host'], run['boot_id'], run['pid']) == (socket.gethostname(), boot_id(), os.getpid())
    assert isinstance(run['start_ticks'], int) and run['start_ticks'] > 0
    assert before - 1 <= run['described_at'] <= time.time() + 1


@pytest.mark.parametrize('command', ['ansible-playbook', 'ansible'])
def test_describe_run_under_ansible_playbook_names_the_playbook_process(tmp_path, command):
    """Ansible's workers are children of ansible-playbook: the run is the playbook's process, not the worker's."""
    playbook = tmp_path / command
    playbook.write_text('import os, subprocess, sys\nprint(os.getpid(), flush=True)\n'
                        'subprocess.run([sys.executable, "-c", sys.argv[1]], check=True)\n')

    finished = subprocess.run([sys.executable, str(playbook), DESCRIBE], capture_output=True, text=True, timeout=60, check=True,
                              env=environment())

    playbook_pid, described = finished.stdout.splitlines()
    assert json.loads(described)['pid'] == int(playbook_pid)


def test_describe_run_in_a_forked_worker_names_the_playbook_process(tmp_path):
    """Ansible forks its workers, which keep ansible-playbook's command line and end with their task: the run is
    the process they were forked from."""
    playbook = tmp_path / 'ansible-playbook'
    playbook.write_text('import json, os, sys\nprint(os.getpid(), flush=True)\nworker = os.fork()\nif worker == 0:\n'
                        '    from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.controller_run import describe_run\n'
                        '    print(os.getpid(), json.dumps(describe_run()), flush=True)\n    os._exit(0)\nos.waitpid(worker, 0)\n')

    finished = subprocess.run([sys.executable, str(playbook)], capture_output=True, text=True, timeout=60, check=True, env=environment())

    playbook_pid, worker_line = finished.stdout.splitlines()
    worker_pid, described = worker_line.split(' ', 1)
    assert worker_pid != playbook_pid
    assert json.loads(described)['pid'] == int(playbook_pid)


def test_a_run_that_still_runs_is_alive_and_gone_once_it_ended(described_child):
    child, run = described_child

    assert run['pid'] == child.pid
    assert run_state(run) == 'alive'
    child.kill()
    child.wait()
    assert run_state(run) == 'gone'


def test_a_process_with_an_odd_name_is_tested_all_the_same(tmp_path):
    odd = tmp_path / 'odd) name (x'
    os.symlink(sys.executable, str(odd))
    child = subprocess.Popen([str(odd), '-c', DESCRIBE, '60'], stdout=subprocess.PIPE, text=True, env=environment())
    try:
        run = json.loads(child.stdout.readline())
        alive = run_state(run)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()

    assert alive == 'alive' and run['pid'] == child.pid
    assert run_state(run) == 'gone'


def test_a_reused_pid_is_not_the_run(described_child):
    dummy, run = described_child

    assert run_state(dict(run, start_ticks=run['start_ticks'] + 1)) == 'gone'
    assert run_state(dict(run, start_ticks=None)) == 'gone'


def test_a_run_before_a_reboot_is_gone(described_child):
    dummy, run = described_child

    assert run_state(dict(run, boot_id='another-boot')) == 'gone'


@pytest.mark.parametrize('record', [None, 'ops1', {}, {'host': 'another-controller', 'pid': 1}])
def test_a_run_of_another_controller_or_no_record_is_unknown(record):
    assert run_state(record) == 'unknown'


def test_a_record_without_a_process_is_unknown():
    run = dict(host=socket.gethostname(), boot_id=boot_id(), pid='1234', start_ticks=5)

    assert run_state(run) == 'unknown'
    assert run_state(dict(run, pid=None)) == 'unknown'
