"""The data_restore module through main(): staging, putting in place, resuming, and every refusal."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import archive
from ansible_collections.bigchaindb.rethinkdb.plugins.modules import data_restore
from tests.unit.plugins.fake_reql import run_module

SET_ID = '20261124T163000Z-snapshot-3f9a'
AS_ROOT = os.geteuid() == 0


@pytest.fixture(name='node')
def node_with_a_part(tmp_path):
    """A node whose data directory holds today's data, and the archive of the data at backup time."""
    backed_up = tmp_path / 'backed-up'
    (backed_up / 'tables').mkdir(parents=True)
    (backed_up / 'metadata').write_bytes(b'then' * 1000)
    (backed_up / 'tables' / 'votes').write_bytes(os.urandom(10000))
    part = str(tmp_path / 'data.tar.zst')
    made = archive.create(str(backed_up), part)
    data_dir = tmp_path / 'lib' / 'default'
    data_dir.mkdir(parents=True)
    (data_dir / 'metadata').write_bytes(b'now')
    args = dict(archive=part, sha256=made['sha256'], data_dir=str(data_dir), set_id=SET_ID)
    return dict(args=args, data_dir=data_dir, backed_up=backed_up, made=made,
                staged=str(data_dir) + '.restore-' + SET_ID, aside=str(data_dir) + '.before-restore-' + SET_ID,
                record=str(data_dir) + '.restore-' + SET_ID + '.json')


def beside(node):
    return sorted(os.listdir(str(node['data_dir'].parent)))


def test_staged_unpacks_beside_and_leaves_the_data_directory(node, capsys):
    staged = run_module(data_restore.main, dict(node['args'], state='staged'), capsys)
    again = run_module(data_restore.main, dict(node['args'], state='staged'), capsys)

    assert staged['changed'] is True and again['changed'] is False
    assert (staged['files'], staged['raw_bytes'], staged['sha256']) == (4, 14000, node['made']['sha256'])
    assert staged['staged_dir'] == node['staged']
    with open(os.path.join(node['staged'], 'metadata'), 'rb') as metadata:
        assert metadata.read() == b'then' * 1000
    assert (node['data_dir'] / 'metadata').read_bytes() == b'now'
    assert beside(node) == sorted(['default', os.path.basename(node['staged']), os.path.basename(node['record'])])


def test_present_moves_the_data_aside_and_puts_the_backup_in_place(node, capsys):
    run_module(data_restore.main, dict(node['args'], state='staged'), capsys)

    restored = run_module(data_restore.main, node['args'], capsys)
    again = run_module(data_restore.main, node['args'], capsys)

    assert restored['changed'] is True and again['changed'] is False
    assert restored['moved_aside_to'] == again['moved_aside_to'] == node['aside']
    assert (again['files'], again['raw_bytes']) == (4, 14000)
    assert (node['data_dir'] / 'tables' / 'votes').read_bytes() == (node['backed_up'] / 'tables' / 'votes').read_bytes()
    with open(os.path.join(node['aside'], 'metadata'), 'rb') as metadata:
        assert metadata.read() == b'now'
    assert not os.path.exists(node['staged'])
    with open(node['record'], encoding='utf-8') as record:
        assert json.load(record)['phase'] == 'done'


def test_present_stages_first_when_needed_and_a_new_node_has_nothing_to_move(node, capsys):
    os.rename(str(node['data_dir']), str(node['data_dir']) + '-elsewhere')

    restored = run_module(data_restore.main, node['args'], capsys)

    assert restored['changed'] is True and restored['moved_aside_to'] is None
    assert (node['data_dir'] / 'metadata').read_bytes() == b'then' * 1000
    assert not os.path.exists(node['aside'])


def test_check_mode_verifies_and_says_what_it_would_do(node, capsys):
    staged = run_module(data_restore.main, dict(node['args'], state='staged', _ansible_check_mode=True), capsys)
    present = run_module(data_restore.main, dict(node['args'], _ansible_check_mode=True), capsys)

    assert staged['changed'] is True and staged['msg'] == 'Would unpack the verified archive into %s.' % node['staged']
    assert present['changed'] is True and present['msg'] == 'Would unpack the verified archive into %s, then move %s aside to %s, then rename %s to %s.' % (
        node['staged'], node['data_dir'], node['aside'], node['staged'], node['data_dir'])
    assert beside(node) == ['default']
    damaged = run_module(data_restore.main, dict(node['args'], sha256='0' * 64, _ansible_check_mode=True), capsys)
    assert damaged['failed'] is True


def test_a_wrong_checksum_is_refused_before_anything_is_unpacked(node, capsys):
    result = run_module(data_restore.main, dict(node['args'], sha256='0' * 64), capsys)

    assert result['failed'] is True
    assert result['msg'] == 'Cannot restore from %s: %s has sha256 %s, expected %s.' % (
        node['args']['archive'], node['args']['archive'], node['made']['sha256'], '0' * 64)
    assert beside(node) == ['default']


def test_interrupted_between_the_renames_it_finishes(node, capsys):
    run_module(data_restore.main, dict(node['args'], state='staged'), capsys)
    with open(node['record'], encoding='utf-8') as stream:
        record = json.load(stream)
    record.update(phase='moving', moved_aside_to=node['aside'])
    with open(node['record'], 'w', encoding='utf-8') as stream:
        json.dump(record, stream)
    os.rename(str(node['data_dir']), node['aside'])

    restored = run_module(data_restore.main, node['args'], capsys)

    assert restored['changed'] is True and restored['moved_aside_to'] == node['aside']
    assert (node['data_dir'] / 'metadata').read_bytes() == b'then' * 1000
    assert run_module(data_restore.main, node['args'], capsys)['changed'] is False


def test_a_data_directory_in_use_is_refused(node, capsys):
    with open(str(node['data_dir'] / 'metadata'), 'rb'):
        result = run_module(data_restore.main, node['args'], capsys)

    assert result['failed'] is True
    assert result['msg'].startswith('%s is in use by %d (' % (node['data_dir'], os.getpid()))
    assert result['msg'].endswith('): stop the RethinkDB server first.')
    assert (node['data_dir'] / 'metadata').read_bytes() == b'now'


def test_an_existing_moved_aside_directory_is_never_overwritten(node, capsys):
    os.mkdir(node['aside'])

    result = run_module(data_restore.main, node['args'], capsys)

    assert result['failed'] is True
    assert result['msg'].startswith('%s already exists, from an earlier restore or made by hand: move it elsewhere' % node['aside'])
    assert beside(node) == sorted(['default', os.path.basename(node['aside'])])


def test_restoring_the_same_set_again_later_is_refused(node, capsys):
    run_module(data_restore.main, node['args'], capsys)
    os.rename(str(node['data_dir']), str(node['data_dir']) + '-used')
    node['data_dir'].mkdir()

    result = run_module(data_restore.main, node['args'], capsys)

    assert result['failed'] is True and 'already exists, from an earlier restore' in result['msg']


def test_a_mount_point_is_refused(node, capsys, monkeypatch):
    monkeypatch.setattr(data_restore, 'is_mount_point', lambda path: path == str(node['data_dir']))

    result = run_module(data_restore.main, node['args'], capsys)

    assert result['msg'] == ('data_dir %s is a mount point, which cannot be moved aside: keep the data in a subdirectory '
                             'of the mount (and point RethinkDB at it).' % node['data_dir'])


def test_not_enough_space_is_refused(node, capsys, monkeypatch):
    monkeypatch.setattr(data_restore, 'free_bytes', lambda path: 1000)

    result = run_module(data_restore.main, node['args'], capsys)

    assert result['msg'] == 'Not enough space to unpack %s beside %s: 1000 bytes free, %d needed.' % (
        node['args']['archive'], node['data_dir'], 14000 + data_restore.HEADROOM_BYTES)


@pytest.mark.parametrize('change, message', [
    (dict(archive='{tmp}/missing.tar.zst'), 'The archive {tmp}/missing.tar.zst does not exist on this node.'),
    (dict(archive=None), 'archive is required: set %s is not staged on this node yet.' % SET_ID),
    (dict(sha256='xyz'), "sha256 'xyz' is not a sha256 in hex (64 characters)."),
    (dict(set_id='latest'), "set_id: 'latest' is not a backup set id (like 20261124T163000Z-dump-3f9a)."),
    (dict(owner='no-such-user-here'), "User 'no-such-user-here' does not exist on this node."),
])
def test_bad_input_is_one_clear_line(node, capsys, change, message):
    tmp = str(node['data_dir'].parent.parent)
    args = dict(node['args'])
    args.update((key, value.format(tmp=tmp) if value else value) for key, value in change.items())

    result = run_module(data_restore.main, dict((key, value) for key, value in args.items() if value is not None), capsys)

    assert result['failed'] is True and result['msg'] == message.format(tmp=tmp)
    assert beside(node) == ['default']


def test_staged_from_another_archive_is_refused(node, capsys):
    run_module(data_restore.main, dict(node['args'], state='staged'), capsys)

    result = run_module(data_restore.main, dict(node['args'], sha256='1' * 64), capsys)

    assert result['failed'] is True and result['msg'].startswith('%s was unpacked from another archive' % node['staged'])


@pytest.mark.skipif(not AS_ROOT, reason='giving files away needs root')
def test_owner_and_group_override_the_archive(node, capsys):
    run_module(data_restore.main, dict(node['args'], owner='4321', group='4322'), capsys)

    owners = set((os.lstat(os.path.join(directory, name)).st_uid, os.lstat(os.path.join(directory, name)).st_gid)
                 for directory, dirs, files in os.walk(str(node['data_dir'])) for name in dirs + files + ['.'])
    assert owners == {(4321, 4322)}
