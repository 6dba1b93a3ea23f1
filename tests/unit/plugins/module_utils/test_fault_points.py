"""Fault points: nothing without the variable; with it, the named point notes the process and holds it there
until it is killed (in a child process, killed by the test)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import fault_points

PROGRAM = ('from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.fault_points import checkpoint\n'
           'for point in ("snapshot:locked", "data_restore:staging", "data_restore:swapping"):\n'
           '    checkpoint(point)\n'
           '    print("passed", point, flush=True)\n')


def run_until(note, pause_at, seconds=20):
    """Run PROGRAM with the points to pause at; return (its output, the note) once it noted a point, or
    once it ended; kill it if it is still running then."""
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), BIGCHAINDB_RETHINKDB_PAUSE_FILE=str(note))
    if pause_at is None:
        environment.pop(fault_points.PAUSE_AT, None)
    else:
        environment[fault_points.PAUSE_AT] = pause_at
    program = subprocess.Popen([sys.executable, '-c', PROGRAM], stdout=subprocess.PIPE, text=True, env=environment)
    try:
        started = time.monotonic()
        while program.poll() is None and not note.exists() and time.monotonic() - started < seconds:
            time.sleep(0.01)
        time.sleep(0.2)
        still_running = program.poll() is None
    finally:
        program.kill()
        output = program.communicate()[0]
    return output.splitlines(), note.read_text() if note.exists() else None, still_running, program.pid


def test_without_the_variable_a_checkpoint_does_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(fault_points.PAUSE_AT, raising=False)
    fault_points.checkpoint('snapshot:locked')

    output, note, still_running, dummy = run_until(tmp_path / 'note', None)

    assert output == ['passed snapshot:locked', 'passed data_restore:staging', 'passed data_restore:swapping']
    assert (note, still_running) == (None, False)


def test_another_point_named_does_not_stop_this_one(tmp_path, monkeypatch):
    monkeypatch.setenv(fault_points.PAUSE_AT, 'catalog:commit')
    fault_points.checkpoint('snapshot:locked')

    output, note, still_running, dummy = run_until(tmp_path / 'note', 'catalog:commit,snapshot:taken')

    assert len(output) == 3 and (note, still_running) == (None, False)


def test_the_named_point_notes_the_process_and_holds_it_until_killed(tmp_path):
    output, note, still_running, pid = run_until(tmp_path / 'note', 'snapshot:taken,data_restore:staging')

    assert output == ['passed snapshot:locked']
    assert note == '%d data_restore:staging\n' % pid
    assert still_running is True
