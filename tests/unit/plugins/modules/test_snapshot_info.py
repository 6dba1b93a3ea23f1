"""The snapshot_info module through main(), the preflight of a snapshot: what stands in the way, free space per
filesystem written to, whether the node reaches the repository's set, and who holds the node lock."""

from __future__ import annotations

import json
import os
import time

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository_local import LocalRepository
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import mount_of
from ansible_collections.bigchaindb.rethinkdb.plugins.modules import snapshot_info
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.backup_sets import CLUSTER
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.fake_reql import run_module

SET_ID = '20261124T163000Z-snapshot-3f9a'
STOP = ['sh', '-c', 'exit 0']


@pytest.fixture(name='node')
def node_data_dir(tmp_path):
    data_dir = tmp_path / 'default'
    (data_dir / 'tables').mkdir(parents=True)
    (data_dir / 'metadata').write_bytes(b'm' * 5000)
    (data_dir / 'tables' / 'votes').write_bytes(b'v' * 20000)
    args = dict(data_dir=str(data_dir), set_id=SET_ID, backend='stopped', stop_command=STOP, start_command=STOP)
    return dict(args=args, data_dir=str(data_dir), tmp=tmp_path, lock=str(data_dir) + '.backup-lock')


def info(node, capsys, **changes) -> dict:
    args = dict(node['args'])
    args.update(changes)
    return run_module(snapshot_info.main, dict((key, value) for key, value in args.items() if value is not None), capsys)


def write_lock(node, **fields) -> dict:
    holder = dict(set_id='20261124T120000Z-snapshot-0000', run={'host': 'ops1', 'pid': 777}, created_at='2026-11-24T12:00:00.000Z',
                  phase='taken', backend='stopped')
    holder.update(fields)
    with open(node['lock'], 'w', encoding='utf-8') as lock:
        json.dump(holder, lock)
    return holder


def test_a_node_ready_for_its_snapshot(node, capsys):
    before = time.time()

    result = info(node, capsys, dest=str(node['tmp'] / 'out' / 'data.tar.zst'), _ansible_check_mode=True)

    mount = mount_of(str(node['tmp']))
    assert result['changed'] is False and result['problems'] == []
    assert before <= result['now'] <= time.time() and result['now_iso'].endswith('Z')
    assert result['data_bytes'] == 25000 and result['backend'] == 'stopped'
    assert result['snapshot']['copy'] == str(node['tmp'] / ('default.snapshot-' + SET_ID))
    assert [(need['path'], need['mountpoint'], need['needed']) for need in result['free_space']] == [
        (str(node['tmp']), mount.mountpoint, 50000)]
    assert result['free_space'][0]['available'] > 50000
    assert (result['lock'], result['lock_expired'], result['lock_message']) == (None, None, None)
    assert result['lock_file'] == node['lock'] and not os.path.exists(node['lock'])
    assert sorted(os.listdir(str(node['tmp']))) == ['default']


def test_every_problem_is_named(node, capsys):
    result = info(node, capsys, stop_command=['no-such-command-here'], min_free_bytes=1 << 62)

    assert result['problems'][0] == 'The no-such-command-here command is not installed on this node.'
    assert result['problems'][1] == '%s needs %d free bytes on %s, which has %d.' % (
        node['tmp'], 1 << 62, mount_of(str(node['tmp'])).mountpoint, result['free_space'][0]['available'])
    assert 'failed' not in result


def test_a_missing_data_directory_and_a_backend_that_cannot_serve(node, capsys):
    missing = info(node, capsys, data_dir=str(node['tmp'] / 'none'))
    unconfigured = info(node, capsys, start_command=None)

    assert missing['problems'] == ['data_dir %s is not a directory.' % (node['tmp'] / 'none')]
    assert (missing['snapshot'], missing['data_bytes']) == (None, 0)
    assert unconfigured['problems'] == ['Say how to stop and start the server: service (a systemd unit), or stop_command and '
                                        'start_command (argument lists).']


def test_the_lock_holder_is_shown_with_its_lease(node, capsys):
    holder = write_lock(node, expires_at=time.time() + 3600)

    live = info(node, capsys)
    write_lock(node, expires_at=time.time() - 60)
    lapsed = info(node, capsys)

    assert live['lock'] == holder and live['lock_expired'] is False
    assert live['lock_message'].startswith('Backup set 20261124T120000Z-snapshot-0000 holds the lock %s (taken by ansible-playbook pid '
                                           '777 on ops1 at 2026-11-24T12:00:00.000Z, until ' % node['lock'])
    assert lapsed['lock_expired'] is True
    assert live['problems'] == [] and lapsed['problems'] == []


def test_a_lock_without_a_lease_never_expires(node, capsys):
    write_lock(node)

    result = info(node, capsys)

    assert result['lock_expired'] is False and ', until ' not in result['lock_message']


def test_a_damaged_lock_is_a_problem(node, capsys):
    with open(node['lock'], 'w', encoding='utf-8') as lock:
        lock.write('{')

    result = info(node, capsys)

    assert result['problems'] == ['%s is not valid JSON; it was not written by this collection, or was damaged.' % node['lock']]
    assert result['lock'] is None


def test_a_path_repository_whose_set_is_not_there_is_a_problem(node, capsys):
    shared = node['tmp'] / 'mnt' / 'backups'

    result = info(node, capsys, repository='path:%s' % shared, cluster=CLUSTER)

    assert result['problems'] == ['path:%s does not hold set %s being written (%s is missing): mount the shared repository at %s on this '
                                  'node.' % (shared, SET_ID, shared / CLUSTER / (SET_ID + '.partial'), shared)]
    assert [need['path'] for need in result['free_space']] == [str(node['tmp'])]
    assert result['free_space'][0]['needed'] == 50000
    assert not os.path.exists(str(node['tmp'] / 'mnt'))


def test_a_path_repository_holding_the_set_is_reachable(node, capsys):
    repository = LocalRepository(str(node['tmp'] / 'shared'), 'path')
    repository.begin(CLUSTER, SET_ID, {'host': 'controller'})

    result = info(node, capsys, repository='path:' + repository.root, cluster=CLUSTER)

    assert result['problems'] == []
    assert [(need['path'], need['needed']) for need in result['free_space']] == [(str(node['tmp']), 50000)]


def test_a_controller_repository_needs_a_file_on_the_node(node, capsys):
    result = info(node, capsys, repository=str(node['tmp'] / 'backups'), cluster=CLUSTER)
    with_dest = info(node, capsys, dest=str(node['tmp'] / 'part.tar.zst'))

    assert result['problems'] == ['A repository of kind controller is on the controller: give dest, a file on this node, instead.']
    assert with_dest['problems'] == []


def test_a_repository_that_is_not_a_url_is_a_problem_not_a_traceback(node, capsys):
    result = info(node, capsys, repository='backups', cluster=CLUSTER)

    assert 'repository backups is not an absolute directory, path:/<directory> or s3://<bucket>/<prefix>.' in result['problems']
    assert 'failed' not in result


def test_a_repository_without_a_cluster_is_one_line_not_a_traceback(node, capsys):
    result = info(node, capsys, repository='path:%s' % (node['tmp'] / 'shared'))

    assert 'cluster' in ' '.join(result.get('problems', [])) + result.get('msg', '')
    assert 'exception' not in result
