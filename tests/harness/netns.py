"""Network namespaces for tests (root only): create and delete them, run a command or a Python function inside
one, find and end every process that lives in one.

A namespace is made with `ip netns add`, so it is named by /run/netns/NAME and `ip -n NAME` configures it.
Commands enter it with `nsenter --net` only: they keep the machine's mount namespace, so a filesystem mounted
while a test runs is seen the same way inside every namespace (`ip netns exec` would give each command a mount
namespace of its own). A Python function runs inside one in a thread of its own that joined the namespace with
os.setns; sockets it opens stay in that namespace after the thread has ended, so a driver connection made there
is used from the test's own thread (it must not reconnect by itself, which would dial from the caller's
namespace).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

NETNS_DIR = Path('/run/netns')


def path(name: str) -> Path:
    """The file that names a namespace made with `ip netns add`."""
    return NETNS_DIR / name


def exists(name: str) -> bool:
    """Whether a named namespace exists."""
    return path(name).exists()


def create(name: str) -> None:
    """A new namespace with its loopback interface up."""
    subprocess.run(['ip', 'netns', 'add', name], check=True, capture_output=True, text=True)
    ip(name, 'link', 'set', 'lo', 'up')


def ip(name: str, *arguments: str) -> subprocess.CompletedProcess:
    """`ip -n NAME ...`, failing with ip's own message."""
    completed = subprocess.run(['ip', '-n', name] + list(arguments), capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError('ip -n %s %s: %s' % (name, ' '.join(arguments), completed.stderr.strip()))
    return completed


def enter_argv(name: str) -> list:
    """argv prefix that runs a command inside the namespace (same mount namespace, same user)."""
    return ['nsenter', '--net=%s' % path(name), '--']


def inode(name: str) -> int | None:
    """The namespace's inode number (what /proc/PID/ns/net links to), or None when it is gone."""
    try:
        return os.stat(path(name)).st_ino
    except OSError:
        return None


def pids_in(name: str) -> list:
    """Every process whose network namespace is this one (what `ip netns pids` lists)."""
    wanted = inode(name)
    if wanted is None:
        return []
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            if os.stat('/proc/%s/ns/net' % entry).st_ino == wanted:
                found.append(int(entry))
        except OSError:
            continue
    return found


def end_processes(name: str, grace: float = 5.0) -> list:
    """SIGTERM every process in the namespace, SIGKILL those still there after `grace` seconds.

    Returns the pids that could not be ended (normally none).
    """
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        pids = pids_in(name)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + wait
        while pids_in(name) and time.monotonic() < deadline:
            time.sleep(0.05)
    return pids_in(name)


def delete(name: str) -> None:
    """End the namespace's processes, then delete it (its interfaces go with it)."""
    if not exists(name):
        return
    end_processes(name)
    subprocess.run(['ip', 'netns', 'delete', name], capture_output=True, check=False)


def call_in(name: str, function, *arguments, **keywords):
    """Run `function(*arguments, **keywords)` inside the namespace and return its result (or raise its error).

    It runs in a thread of its own that joins the namespace first, so the calling thread never changes namespace.
    """
    outcome: dict = {}

    def run() -> None:
        try:
            descriptor = os.open(path(name), os.O_RDONLY)
            try:
                os.setns(descriptor, os.CLONE_NEWNET)
            finally:
                os.close(descriptor)
            outcome['value'] = function(*arguments, **keywords)
        except BaseException as error:  # handed to the caller, who re-raises it
            outcome['error'] = error

    thread = threading.Thread(target=run, name='netns-%s' % name, daemon=True)
    thread.start()
    thread.join()
    if 'error' in outcome:
        raise outcome['error']
    return outcome['value']
