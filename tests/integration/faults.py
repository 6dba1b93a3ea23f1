"""Deterministic kill points for the fault tests: end ansible-playbook just before a named task, or at a named
step inside a module (plugins/module_utils/fault_points.py), the way a controller that dies there would."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from ansible_collections.bigchaindb.rethinkdb.tests.integration.conftest import Ansible, PlaybookRun, read_records

PAUSE_TIMEOUT = 600


def descendants(pid: int) -> list:
    """Every process below pid (children first in no particular order), from /proc."""
    children: dict = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            stat = Path('/proc', entry, 'stat').read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(')', 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything it started that is still below it (detached watchdogs and daemonized
    servers are not: they outlive the controller, as they must)."""
    for process in [pid] + descendants(pid):
        try:
            os.kill(process, signal.SIGKILL)
        except ProcessLookupError:
            continue


def run_interrupted(ansible: Ansible, playbook, extra_vars: dict | None = None, before_task: str | None = None,
                    at_point: str | None = None, how: str = 'kill') -> PlaybookRun:
    """Run a playbook and end it before a task or at a module's fault point: `kill` SIGKILLs ansible-playbook
    and every process below it (the controller dies, the module with it), `interrupt` sends SIGINT to
    ansible-playbook alone, as Ctrl-C does (its workers are in sessions of their own). Returns what ran."""
    assert (before_task is None) != (at_point is None)
    argv, env, record_file = ansible.command(playbook, extra_vars)
    note = ansible.workdir / ('pause-note-%d' % ansible.runs)
    env.update(PAUSE_NOTE=str(note), BIGCHAINDB_RETHINKDB_PAUSE_FILE=str(note))
    if before_task:
        env['PAUSE_BEFORE_TASK'] = before_task
    else:
        env['BIGCHAINDB_RETHINKDB_PAUSE_AT'] = at_point
    log = open(ansible.workdir / ('interrupted-%d.log' % ansible.runs), 'w+', encoding='utf-8')
    process = subprocess.Popen(argv, env=env, cwd=ansible.workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + PAUSE_TIMEOUT
        while not note.exists():
            if process.poll() is not None:
                log.seek(0)
                raise AssertionError('the run ended (rc %s) before %s:\n%s' % (process.returncode, before_task or at_point, log.read()[-6000:]))
            assert time.monotonic() < deadline, 'the run never reached %s' % (before_task or at_point)
            time.sleep(0.05)
        time.sleep(0.2)
        if how == 'kill':
            kill_tree(process.pid)
        else:
            os.killpg(process.pid, signal.SIGINT)
            os.kill(process.pid, signal.SIGCONT)
            try:
                process.wait(120)
            except subprocess.TimeoutExpired:
                kill_tree(process.pid)
        process.wait(60)
    finally:
        if process.poll() is None:
            kill_tree(process.pid)
            process.wait(60)
        log.seek(0)
        output = log.read()
        log.close()
    return PlaybookRun(subprocess.CompletedProcess(argv, process.returncode, output, ''), read_records(record_file))


def run_with_fault(ansible: Ansible, playbook, extra_vars: dict | None, before_task: str, fault) -> PlaybookRun:
    """Run a playbook, stop it just before a task, call fault() (a partition, a store stopped), and let it go
    on to its end; returns what ran."""
    argv, env, record_file = ansible.command(playbook, extra_vars)
    note = ansible.workdir / ('pause-note-%d' % ansible.runs)
    env.update(PAUSE_NOTE=str(note), PAUSE_BEFORE_TASK=before_task)
    process = subprocess.Popen(argv, env=env, cwd=ansible.workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + PAUSE_TIMEOUT
        while not note.exists():
            assert process.poll() is None, 'the run ended (rc %s) before %s:\n%s' % (process.returncode, before_task, process.stdout.read()[-6000:])
            assert time.monotonic() < deadline, 'the run never reached %s' % before_task
            time.sleep(0.05)
        fault()
        os.kill(process.pid, signal.SIGCONT)
        output, dummy = process.communicate(timeout=PAUSE_TIMEOUT)
    finally:
        if process.poll() is None:
            kill_tree(process.pid)
            process.wait(60)
    return PlaybookRun(subprocess.CompletedProcess(argv, process.returncode, output, ''), read_records(record_file))
