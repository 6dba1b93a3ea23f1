"""Fixtures shared by the unit tests of the snapshot backends and modules."""

from __future__ import annotations

import os
import subprocess
import sys

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


FAKE_SYSTEMCTL = '''#!%s
"""A stand-in systemctl: units are active when their name is in the state file; every call is logged."""
import os, sys
state_dir = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(state_dir, 'calls.log'), 'a') as log:
    log.write(' '.join(sys.argv[1:]) + '\\n')
active_file = os.path.join(state_dir, 'active')
active = open(active_file).read().split() if os.path.exists(active_file) else []
verb, unit = sys.argv[1], sys.argv[-1]
if verb == 'is-active':
    sys.exit(0 if unit in active else 3)
if unit.startswith('broken'):
    sys.stderr.write('Job for %%s failed because the control process exited with error code.\\n' %% unit)
    sys.exit(1)
active = [name for name in active if name != unit] + ([unit] if verb == 'start' else [])
open(active_file, 'w').write(' '.join(active))
'''


class Systemctl:
    """The fake systemctl's state and log."""

    def __init__(self, directory):
        self.directory = directory

    def set_active(self, *units):
        (self.directory / 'active').write_text(' '.join(units))

    def active(self) -> list:
        path = self.directory / 'active'
        return path.read_text().split() if path.exists() else []

    def calls(self) -> list:
        path = self.directory / 'calls.log'
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture(name='systemctl')
def fake_systemctl(tmp_path, monkeypatch):
    """A `systemctl` first on PATH that keeps unit states in a file (no real unit is ever touched)."""
    directory = tmp_path / 'fake-bin'
    directory.mkdir()
    tool = directory / 'systemctl'
    tool.write_text(FAKE_SYSTEMCTL % sys.executable)
    tool.chmod(0o755)
    monkeypatch.setenv('PATH', '%s:%s' % (directory, os.environ.get('PATH', os.defpath)))
    return Systemctl(directory)
