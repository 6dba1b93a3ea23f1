# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a scratch cluster (the servers of a restore rehearsal) leaves on its host, and how it all goes, whatever
happens to the run that made it: its directory holds a record (run.json) and each server's pid file, and a
keeper process removes servers and directory once that run is gone or the cluster's lifetime is over.

Standard library only, and no imports of the collection: besides being imported by the modules, this file's
source is the keeper's program, run by a fresh interpreter (python -I -S -B) that outlives the module.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import time

RUN_FILE = 'run.json'
PID_FILE = 'server.pid'
BOOT_ID = '/proc/sys/kernel/random/boot_id'
POLL_SECONDS = 1.0
STOP_SECONDS = 30.0


def read_record(path: str) -> dict | None:
    """A JSON record, or None when it is missing or unreadable (being replaced, or never written)."""
    try:
        with open(path, encoding='utf-8') as stream:
            record = json.load(stream)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _proc_text(path: str) -> str | None:
    try:
        with open(path, 'rb') as stream:
            return stream.read().decode('utf-8', 'replace')
    except OSError:
        return None


def start_ticks(pid: int) -> int | None:
    """When a live process started, in clock ticks since boot; None when it is gone or a zombie."""
    stat = _proc_text('/proc/%d/stat' % pid)
    if stat is None:
        return None
    fields = stat[stat.rindex(')') + 2:].split()
    return None if fields[0] == 'Z' else int(fields[19])


def is_process(record: dict | None) -> bool:
    """Whether a {pid, start_ticks} record names a process that still runs (not a later one with its pid)."""
    if not isinstance(record, dict) or not isinstance(record.get('pid'), int):
        return False
    ticks = start_ticks(record['pid'])
    return ticks is not None and ticks == record.get('start_ticks')


def run_gone(run: dict | None) -> bool:
    """Whether the controller run that made a scratch cluster has ended, as far as this host can tell: a run of
    this host in an earlier boot, or whose process is gone. A run of another host cannot be tested here."""
    if not isinstance(run, dict) or run.get('host') != socket.gethostname():
        return False
    if run.get('boot_id') != (_proc_text(BOOT_ID) or '').strip():
        return True
    return not is_process(run)


def server_pids(scratch: str) -> dict:
    """The running servers of a scratch cluster by name: each <scratch>/<server>/server.pid naming a live
    process whose command line names the scratch directory (a recycled pid names another process)."""
    found = {}
    try:
        names = sorted(os.listdir(scratch))
    except OSError:
        return found
    marker = os.fsencode(scratch.rstrip('/') + '/')
    for name in names:
        text = _proc_text(os.path.join(scratch, name, PID_FILE)) or ''
        if not text.strip().isdigit():
            continue
        pid = int(text.strip())
        command = (_proc_text('/proc/%d/cmdline' % pid) or '').encode('utf-8', 'replace')
        if start_ticks(pid) is not None and marker in command:
            found[name] = pid
    return found


def _signal(pid: int, number: int) -> None:
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        return


def stop_servers(scratch: str, timeout: float = STOP_SECONDS) -> dict:
    """SIGTERM every running server of the scratch cluster, SIGKILL those still running after timeout, and
    wait until all have exited; return the names stopped and those killed."""
    running = server_pids(scratch)
    for pid in running.values():
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(start_ticks(pid) is not None for pid in running.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    killed = sorted(name for name, pid in running.items() if start_ticks(pid) is not None)
    for name in killed:
        _signal(running[name], signal.SIGKILL)
    while any(start_ticks(running[name]) is not None for name in killed):
        time.sleep(0.05)
    return dict(stopped=sorted(running), killed=killed)


def end_keeper(scratch: str) -> bool:
    """Stop the keeper of a scratch cluster, when it still runs (the module removes the cluster itself)."""
    keeper = (read_record(os.path.join(scratch, RUN_FILE)) or {}).get('keeper')
    if not is_process(keeper):
        return False
    _signal(keeper['pid'], signal.SIGKILL)
    while start_ticks(keeper['pid']) is not None:
        time.sleep(0.01)
    return True


def remove(scratch: str, timeout: float = STOP_SECONDS) -> dict:
    """Stop the scratch cluster's servers and remove its directory; return what was stopped."""
    stopped = stop_servers(scratch, timeout)
    shutil.rmtree(scratch, ignore_errors=True)
    return dict(stopped, removed=not os.path.lexists(scratch))


def due(record: dict | None, now: float) -> bool:
    """Whether a scratch cluster's record says it must go: its lifetime is over, or its run is gone."""
    return record is not None and (now >= record.get('expires_at', 0) or run_gone(record.get('run')))


def watch(scratch: str) -> None:
    """The keeper's loop: remove the scratch cluster when it is due; end once it is gone."""
    while True:
        record = read_record(os.path.join(scratch, RUN_FILE))
        if record is None:
            # Written before the keeper starts and replaced atomically: gone with the scratch cluster.
            return
        if due(record, time.time()):
            remove(scratch)
            return
        time.sleep(POLL_SECONDS)


def detach() -> int:
    """Fork the keeper into a session of its own, with no inherited output and / as working directory; in the
    launching process return the keeper's pid, in the keeper 0."""
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid:
        os.close(ready_write)
        os.read(ready_read, 1)
        os.close(ready_read)
        return pid
    os.close(ready_read)
    os.setsid()
    os.chdir('/')
    null = os.open(os.devnull, os.O_RDWR)
    for standard in (0, 1, 2):
        os.dup2(null, standard)
    os.write(ready_write, b'.')
    os.close(ready_write)
    return 0


def main(argv: list) -> int:
    """`watch <scratch directory>`: print the pid of a detached keeper of that scratch cluster, and exit."""
    if len(argv) != 2 or argv[0] != 'watch' or not os.path.isabs(argv[1]):
        sys.stderr.write('usage: watch <absolute scratch directory>\n')
        return 2
    pid = detach()
    if pid:
        sys.stdout.write('%d\n' % pid)
        return 0
    watch(argv[1])
    return 0


if __name__ == '__main__':
    raise SystemExit(main(sys.argv[1:]))
