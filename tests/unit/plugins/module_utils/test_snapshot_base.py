"""Shared snapshot helpers: mount table, checked commands, the wait for the shared instant, names and sizes."""

from __future__ import annotations

import os
import time

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import snapshot_base
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import Commands, Mount, SnapshotError
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.conftest import mount_line

TABLE = [Mount(line) for line in (
    mount_line('/', 'ext4', '/dev/vda', device='254:0'),
    mount_line('/srv', 'xfs', '/dev/mapper/vg0-srv', device='253:1'),
    mount_line('/srv/rethink\\040data', 'btrfs', '/dev/sdb', root='/@rethinkdb', device='0:40'),
    mount_line('/srv/old', 'xfs', '/dev/sdc', device='8:32'),
    mount_line('/srv/old', 'btrfs', '/dev/sdb', root='/@old', device='0:40'),
)]


def test_mount_of_takes_the_deepest_and_latest_mount_and_unescapes_paths():
    assert snapshot_base.mount_of('/srv/rethink data/default', TABLE).mountpoint == '/srv/rethink data'
    assert snapshot_base.mount_of('/srv/other', TABLE).source == '/dev/mapper/vg0-srv'
    assert snapshot_base.mount_of('/srvx', TABLE).mountpoint == '/'
    assert snapshot_base.mount_of('/srv/old/x', TABLE).fstype == 'btrfs'


def test_inner_path_counts_from_the_filesystem_root():
    mount = snapshot_base.mount_of('/srv/rethink data/default', TABLE)

    assert mount.inner_path('/srv/rethink data/default') == '@rethinkdb/default'
    assert TABLE[1].inner_path('/srv') == ''


def test_same_filesystem_follows_the_superblock_not_the_mount():
    assert TABLE[2].device == TABLE[4].device
    assert snapshot_base.is_mount_point('/srv/old', TABLE)
    assert not snapshot_base.is_mount_point('/srv/old/x', TABLE)


def test_mount_of_this_machine_finds_the_root():
    assert snapshot_base.mount_of('/').mountpoint == '/'


def test_failed_command_names_purpose_rc_and_stderr(run, commands):
    run.answer(['lvcreate'], rc=5, stdout='', stderr='  Volume group "vg0" has insufficient free space.\n')

    with pytest.raises(SnapshotError) as failure:
        commands.run(['lvcreate', '--snapshot', 'vg0/data'], 'create the snapshot')

    assert str(failure.value) == 'Cannot create the snapshot: lvcreate exited with 5: Volume group "vg0" has insufficient free space.'
    assert failure.value.details == dict(argv=['lvcreate', '--snapshot', 'vg0/data'], rc=5, stdout='',
                                         stderr='  Volume group "vg0" has insufficient free space.\n')


def test_commands_run_in_the_c_locale_with_absolute_paths(run):
    commands = Commands(run, locate=lambda name: '/usr/sbin/' + name)

    commands.run(['fsfreeze', '--freeze', '/srv'], 'freeze')
    commands.attempt(['zfs', 'list'])

    assert run.calls == [['/usr/sbin/fsfreeze', '--freeze', '/srv'], ['/usr/sbin/zfs', 'list']]
    assert run.options == [{'environ_update': {'LC_ALL': 'C', 'LANG': 'C'}}] * 2


def test_a_missing_tool_is_named(run):
    commands = Commands(run, locate=lambda name: None)

    with pytest.raises(SnapshotError, match='The btrfs command is not installed on this node.'):
        commands.run(['btrfs', 'subvolume', 'snapshot'], 'snapshot')
    assert commands.missing(['btrfs', 'cp']) == ['btrfs', 'cp']
    assert run.calls == []


def test_find_tool_looks_in_sbin_too(monkeypatch, tmp_path):
    tool = tmp_path / 'fsfreeze'
    tool.write_text('#!/bin/sh\n')
    tool.chmod(0o755)
    monkeypatch.setenv('PATH', '/nonexistent')
    monkeypatch.setattr(snapshot_base, 'SBIN_DIRS', (str(tmp_path),))

    assert snapshot_base.find_tool('fsfreeze') == str(tool)
    assert snapshot_base.find_tool('no-such-tool-here') is None


def test_wait_until_an_instant_ahead_never_returns_early():
    instant = time.time() + 0.05

    late_ms = snapshot_base.wait_until(instant)

    assert time.time() >= instant
    assert late_ms >= 0


def test_wait_until_a_past_instant_returns_at_once_and_says_how_late():
    late_ms = snapshot_base.wait_until(time.time() - 2)

    assert late_ms >= 2000


def test_tree_bytes_counts_hard_links_once_and_ignores_symlinks(tmp_path):
    (tmp_path / 'a').write_bytes(b'x' * 100)
    os.link(str(tmp_path / 'a'), str(tmp_path / 'b'))
    os.symlink('a', str(tmp_path / 'c'))
    (tmp_path / 'sub').mkdir()
    (tmp_path / 'sub' / 'd').write_bytes(b'y' * 10)

    assert snapshot_base.tree_bytes(str(tmp_path)) == 110


def test_snapshot_names_differ_per_data_directory():
    first = snapshot_base.snapshot_name('/srv/a/data', '20261124T163000Z-snapshot-3f9a')

    assert first.startswith('rethinkdb-20261124T163000Z-snapshot-3f9a-')
    assert first != snapshot_base.snapshot_name('/srv/b/data', '20261124T163000Z-snapshot-3f9a')
    assert snapshot_base.copy_path('/srv', '/srv/a/data', 'S1') == '/srv/data.snapshot-S1'
