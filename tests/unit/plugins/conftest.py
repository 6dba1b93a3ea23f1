"""Fixtures shared by the unit tests of the snapshot backends and modules."""

from __future__ import annotations

import subprocess

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import snapshot_base
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import Commands, Mount


class FakeRun:
    """Stands in for AnsibleModule.run_command: records every argv and answers from (argv prefix, rc, stdout,
    stderr) rules, the first matching rule winning; anything else succeeds silently."""

    def __init__(self):
        self.calls = []
        self.options = []
        self.rules = []

    def answer(self, prefix, rc=0, stdout='', stderr=''):
        self.rules.append((list(prefix), rc, stdout, stderr))
        return self

    def __call__(self, argv, **kwargs):
        self.calls.append(list(argv))
        self.options.append(kwargs)
        for prefix, rc, stdout, stderr in self.rules:
            if list(argv[:len(prefix)]) == prefix:
                return rc, stdout, stderr
        return 0, '', ''


def real_run(argv, **options):
    """What AnsibleModule.run_command does that the backends rely on: run argv, return (rc, stdout, stderr)."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False, pass_fds=options.get('pass_fds', ()))
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(name='run')
def fake_run():
    return FakeRun()


@pytest.fixture(name='commands')
def fake_commands(run):
    """Commands whose argv reach `run` unresolved (every tool 'installed' under its own name)."""
    return Commands(run, locate=lambda name: name)


def mount_line(mountpoint, fstype, source, root='/', device='253:1'):
    """A /proc/self/mountinfo line."""
    return '36 25 %s %s %s rw,relatime shared:1 - %s %s rw' % (device, root, mountpoint, fstype, source)


def fake_mounts(monkeypatch, *lines):
    """Make the snapshot code see these mounts instead of the machine's; return the table."""
    table = [Mount(line) for line in lines]
    monkeypatch.setattr(snapshot_base, 'mounts', lambda: table)
    return table
