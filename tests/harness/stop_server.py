"""Stop a RethinkDB server (real or test) by its pid file: SIGTERM, then wait until the process has exited.

Usage: python stop_server.py PID_FILE [TIMEOUT_SECONDS]. Exit status 0 when the server is gone (or was not
running), 1 when it is still running after the timeout. Used as `rethinkdb_stop_command` in test inventories.
"""

from __future__ import annotations

import os
import signal
import sys
import time

DEFAULT_TIMEOUT = 60.0


def process_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open('/proc/%d/stat' % pid, encoding='ascii', errors='replace') as stat:
            return stat.read().rsplit(')', 1)[-1].split()[0] != 'Z'
    except OSError:
        return False


def read_pid(pid_file: str) -> int | None:
    """The pid in a pid file, or None if there is no usable one."""
    try:
        with open(pid_file, encoding='ascii') as handle:
            text = handle.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait until the process has exited; False on timeout."""
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def stop(pid_file: str, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """SIGTERM the server of a pid file and wait for it to exit; True when it is not running any more."""
    pid = read_pid(pid_file)
    if pid is None or not process_alive(pid):
        return True
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    return wait_gone(pid, timeout)


def main(argv: list) -> int:
    """Command line entry point."""
    if len(argv) not in (1, 2):
        sys.stderr.write('usage: stop_server.py PID_FILE [TIMEOUT_SECONDS]\n')
        return 2
    timeout = float(argv[1]) if len(argv) == 2 else DEFAULT_TIMEOUT
    if stop(argv[0], timeout):
        return 0
    sys.stderr.write('server of %s still running after %.0f seconds\n' % (argv[0], timeout))
    return 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
