# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who runs a backup or restore: the ansible-playbook process on the controller, told in a way that a later
run can test (is that run still alive?), so that what an interrupted run left can be broken safely."""

from __future__ import annotations

import os
import socket
import time

BOOT_ID = '/proc/sys/kernel/random/boot_id'
PLAYBOOK_COMMANDS = ('ansible-playbook', 'ansible')


def _read(path: str) -> str | None:
    try:
        with open(path, 'rb') as stream:
            return stream.read().decode('utf-8', 'replace')
    except OSError:
        return None


def start_ticks(pid: int) -> int | None:
    """When a process started, in clock ticks since boot (field 22 of /proc/<pid>/stat), or None if gone."""
    stat = _read('/proc/%d/stat' % pid)
    if stat is None:
        return None
    return int(stat[stat.rindex(')') + 2:].split()[19])


def _parent(pid: int) -> int | None:
    stat = _read('/proc/%d/stat' % pid)
    return int(stat[stat.rindex(')') + 2:].split()[1]) if stat else None


def _is_playbook(pid: int) -> bool:
    arguments = (_read('/proc/%d/cmdline' % pid) or '').split('\0')
    return any(os.path.basename(argument) in PLAYBOOK_COMMANDS for argument in arguments[:2])


def playbook_pid() -> int:
    """The ansible-playbook process this one runs under, else this one: the outermost of the ancestors that run
    it, since Ansible's workers are forks of it with its command line, and end with their task."""
    pid = os.getpid()
    found = None
    while pid and pid > 1:
        if _is_playbook(pid):
            found = pid
        elif found:
            break
        pid = _parent(pid)
    return found or os.getpid()


def describe_run() -> dict:
    """This controller run: host, boot, process and its start, for a record a later run can test."""
    pid = playbook_pid()
    return dict(host=socket.gethostname(), boot_id=(_read(BOOT_ID) or '').strip(), pid=pid, start_ticks=start_ticks(pid),
                described_at=round(time.time(), 3))


def run_state(run: dict | None) -> str:
    """'alive' or 'gone' for a run of this controller (same host and boot: its process is tested); 'gone' for a
    run of this host before a reboot; 'unknown' for a run of another controller, or a record without a run."""
    if not isinstance(run, dict) or run.get('host') != socket.gethostname():
        return 'unknown'
    if run.get('boot_id') != (_read(BOOT_ID) or '').strip():
        return 'gone'
    pid = run.get('pid')
    if not isinstance(pid, int):
        return 'unknown'
    return 'alive' if start_ticks(pid) is not None and start_ticks(pid) == run.get('start_ticks') else 'gone'
