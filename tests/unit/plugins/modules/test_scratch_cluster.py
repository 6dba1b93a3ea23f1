"""bigchaindb.rethinkdb.scratch_cluster and scratch_cluster_info run as modules: made with a keeper, listed, removed;
a directory that is not a scratch cluster is never removed."""

from __future__ import annotations

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import scratch_keeper
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.controller_run import describe_run
from ansible_collections.bigchaindb.rethinkdb.plugins.modules import scratch_cluster, scratch_cluster_info
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.fake_reql import run_module


def test_present_listed_absent(tmp_path, capsys):
    directory = str(tmp_path / 'rehearsals')
    args = dict(directory=directory, name='r1', servers=['node1', 'node2'], run=describe_run(), lifetime=60)

    made = run_module(scratch_cluster.main, dict(args, state='present'), capsys)
    again = run_module(scratch_cluster.main, dict(args, state='present'), capsys)
    [listed] = run_module(scratch_cluster_info.main, dict(directory=directory), capsys)['clusters']
    removed = run_module(scratch_cluster.main, dict(directory=directory, name='r1', state='absent'), capsys)
    gone = run_module(scratch_cluster.main, dict(directory=directory, name='r1', state='absent'), capsys)

    assert made['changed'] is True and made['layout']['node2']['data_dir'] == str(tmp_path / 'rehearsals' / 'r1' / 'node2' / 'data')
    assert again['changed'] is False and again['keeper'] == made['keeper']
    assert (listed['name'], listed['recorded'], listed['expired'], listed['keeper_running']) == ('r1', True, False, True)
    assert (removed['changed'], removed['stopped'], removed['killed']) == (True, [], [])
    assert not (tmp_path / 'rehearsals' / 'r1').exists() and not scratch_keeper.is_process(made['keeper'])
    assert gone['changed'] is False


def test_a_directory_without_a_scratch_cluster_record_is_never_removed(tmp_path, capsys):
    kept = tmp_path / 'rehearsals' / 'precious'
    kept.mkdir(parents=True)
    (kept / 'file').write_text('keep me')

    refused = run_module(scratch_cluster.main, dict(directory=str(tmp_path / 'rehearsals'), name='precious', state='absent'), capsys)

    assert refused['failed'] is True and refused['msg'].startswith('%s is not a scratch cluster (it has no record of one' % kept)
    assert (kept / 'file').read_text() == 'keep me'


def test_bad_options_fail_in_one_line(tmp_path, capsys):
    base = dict(directory=str(tmp_path), state='present', run={})
    assert run_module(scratch_cluster.main, dict(base, name='../up', servers=['n1']), capsys)['msg'].startswith("name '../up' is not a valid name")
    assert run_module(scratch_cluster.main, dict(base, name='r1', servers=['n1', 'n1']), capsys)['msg'] == (
        'servers must name each server of the scratch cluster once.')
    assert run_module(scratch_cluster.main, dict(base, name='r1', servers=['n1'], lifetime=0), capsys)['msg'] == (
        'lifetime must be at least 1 second, got 0.')
    started = run_module(scratch_cluster.main, dict(base, state='started', name='r9', servers=['n1']), capsys)
    assert started['msg'] == 'There is no scratch cluster %s: make it first (state=present).' % (tmp_path / 'r9')
