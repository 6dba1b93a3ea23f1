"""Unit tests of bigchaindb.rethinkdb.replicas: comparison, check mode, dry runs and every refusal."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.modules import replicas
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.fake_reql import Connection, FakeR, names, run_module

SERVER_CONFIG = [
    {'id': 'id-1', 'name': 'node1', 'tags': ['default', 'dc1']},
    {'id': 'id-2', 'name': 'node2', 'tags': ['default', 'dc1']},
    {'id': 'id-3', 'name': 'node3', 'tags': ['default', 'dc2']},
]


def shard(primary, *others, nonvoting=()):
    """One table_config shard."""
    return {'primary_replica': primary, 'replicas': [primary] + list(others), 'nonvoting_replicas': list(nonvoting)}


def table(name, *shards):
    """One table_config row of database bigchain."""
    return {'id': 'id-' + name, 'db': 'bigchain', 'name': name, 'primary_key': 'id', 'shards': list(shards)}


class FakeCluster:
    """Answers the module's queries from table configs it keeps, applying non-dry reconfigures."""

    def __init__(self, configs, reconfigure_error=None, wait_error=None):
        self.configs = dict((row['name'], row) for row in configs)
        self.reconfigure_error = reconfigure_error
        self.wait_error = wait_error
        self.reconfigures = []

    def answer(self, chain):
        steps = names(chain)
        if steps == ('db_list',):
            return ['bigchain', 'rethinkdb']
        if steps == ('db', 'table'):
            return {'table_config': list(self.configs.values()), 'server_config': SERVER_CONFIG,
                    'table_status': self.statuses()}[chain[1][1][0]]
        if steps == ('db', 'table', 'reconfigure'):
            return self.reconfigure(chain[1][1][0], chain[2][2])
        if steps == ('db', 'table', 'wait'):
            if self.wait_error:
                raise self.wait_error
            return {'ready': 1}
        raise AssertionError('unexpected query %r' % (steps,))

    def reconfigure(self, name, options):
        self.reconfigures.append((name, dict(options)))
        if self.reconfigure_error:
            raise self.reconfigure_error
        count = options['replicas'] if isinstance(options['replicas'], int) else sum(options['replicas'].values())
        servers = [row['name'] for row in SERVER_CONFIG][:count]
        new = dict(self.configs[name], shards=[shard(*servers)] * options['shards'])
        if not options['dry_run']:
            self.configs[name] = new
        return {'reconfigured': 0 if options['dry_run'] else 1, 'config_changes': [{'old_val': None, 'new_val': new}], 'status_changes': []}

    def statuses(self):
        return [{'db': 'bigchain', 'name': name, 'status': {'all_replicas_ready': False},
                 'shards': [{'replicas': [{'server': 'node3', 'state': 'disconnected'}, {'server': 'node1', 'state': 'ready'}]}]}
                for name in self.configs]


class ReqlFailure(replicas.ReqlError):
    """An error the server sends back."""


@pytest.fixture(name='install')
def install_cluster(monkeypatch):
    """Return a function that puts a FakeCluster behind the module's connection."""
    def install(cluster):
        fake = FakeR(cluster.answer)
        monkeypatch.setattr(replicas, 'connect', lambda module: (fake, Connection()))
        return cluster
    return install


ONE_REPLICA = [table('backlog', shard('node1')), table('bigchain', shard('node2')), table('votes', shard('node3'))]


def test_sets_three_replicas_on_every_table_and_waits(install, capsys):
    cluster = install(FakeCluster(copy.deepcopy(ONE_REPLICA)))

    result = run_module(replicas.main, {'replicas': 3}, capsys)

    assert result['changed'] is True
    assert result['reconfigured'] == ['bigchain.backlog', 'bigchain.bigchain', 'bigchain.votes']
    applied = [options for _name, options in cluster.reconfigures if not options['dry_run']]
    assert applied == [{'shards': 1, 'replicas': 3, 'dry_run': False}] * 3
    assert [len(row['shards'][0]['replicas']) for row in cluster.configs.values()] == [3, 3, 3]
    assert result['tables']['bigchain.votes']['before'] == [shard('node3')]
    assert result['tables']['bigchain.votes']['after'] == [shard('node1', 'node2', 'node3')]
    assert result['diff']['before']['bigchain.votes'] == {'shards': [shard('node3')]}


def test_every_change_is_dry_run_before_any_is_applied(install, capsys):
    cluster = install(FakeCluster(copy.deepcopy(ONE_REPLICA)))

    run_module(replicas.main, {'replicas': 2}, capsys)

    assert [options['dry_run'] for _name, options in cluster.reconfigures] == [True, True, True, False, False, False]


def test_second_run_changes_nothing(install, capsys):
    cluster = install(FakeCluster([table('votes', shard('node1', 'node2', 'node3'))]))

    result = run_module(replicas.main, {'replicas': 3, 'tables': ['votes']}, capsys)

    assert result['changed'] is False
    assert result['reconfigured'] == []
    assert cluster.reconfigures == []
    assert result['diff'] == {'before': {}, 'after': {}}


def test_replicas_from_extra_vars_arrive_as_text(install, capsys):
    install(FakeCluster([table('votes', shard('node1', 'node2'))]))

    result = run_module(replicas.main, {'replicas': '2'}, capsys)

    assert result['changed'] is False


def test_check_mode_shows_the_dry_run_config_and_changes_nothing(install, capsys):
    cluster = install(FakeCluster(copy.deepcopy(ONE_REPLICA)))

    result = run_module(replicas.main, {'replicas': 3, '_ansible_check_mode': True, '_ansible_diff': True}, capsys)

    assert result['changed'] is True
    assert all(options['dry_run'] for _name, options in cluster.reconfigures)
    assert cluster.configs['votes']['shards'] == [shard('node3')]
    assert result['diff']['after']['bigchain.votes'] == {'shards': [shard('node1', 'node2', 'node3')]}
    assert result['waited'] == 0


def test_shard_count_is_kept_unless_asked(install, capsys):
    cluster = install(FakeCluster([table('bigchain', shard('node1'), shard('node2'))]))

    run_module(replicas.main, {'replicas': 1, 'shards': 4}, capsys)

    assert cluster.reconfigures[-1][1]['shards'] == 4
    assert len(cluster.configs['bigchain']['shards']) == 4


DC_LAYOUT = {'replicas': {'dc1': 1, 'dc2': 1}, 'primary_replica_tag': 'dc1', 'nonvoting_replica_tags': [], 'shards': None}


@pytest.mark.parametrize('shards, layout, expected', [
    ([shard('node1', 'node2')], {'replicas': {'default': 2}, 'primary_replica_tag': 'default', 'nonvoting_replica_tags': [], 'shards': None}, True),
    ([shard('node1', 'node2')], {'replicas': {'default': 2}, 'primary_replica_tag': 'default', 'nonvoting_replica_tags': [], 'shards': 2}, False),
    ([shard('node1', 'node3')], DC_LAYOUT, True),
    ([shard('node3', 'node1')], DC_LAYOUT, False),
    ([shard('node1', 'node2')], DC_LAYOUT, False),
    ([shard('node1', 'node3', nonvoting=['node3'])], dict(DC_LAYOUT, nonvoting_replica_tags=['dc2']), True),
    ([shard('node1', 'node3')], dict(DC_LAYOUT, nonvoting_replica_tags=['dc2']), False),
    ([shard('node1', 'node9')], {'replicas': {'default': 2}, 'primary_replica_tag': 'default', 'nonvoting_replica_tags': [], 'shards': None}, True),
    ([shard('node1', 'node9')], DC_LAYOUT, False),
])
def test_config_matches(shards, layout, expected):
    tags = dict((row['name'], row['tags']) for row in SERVER_CONFIG)

    assert replicas.config_matches(shards, layout, tags) is expected


def test_replicas_per_tag_are_sent_as_a_mapping(install, capsys):
    cluster = install(FakeCluster([table('votes', shard('node1'))]))

    run_module(replicas.main, {'replicas': {'dc1': 2, 'dc2': 1}, 'primary_replica_tag': 'dc1', 'nonvoting_replica_tags': ['dc2']}, capsys)

    assert cluster.reconfigures[0][1] == {'shards': 1, 'replicas': {'dc1': 2, 'dc2': 1}, 'primary_replica_tag': 'dc1',
                                          'nonvoting_replica_tags': ['dc2'], 'dry_run': True}


@pytest.mark.parametrize('args, message', [
    ({'replicas': 0}, 'replicas must be at least 1, got 0: a table needs somewhere to keep its data.'),
    ({'replicas': -2}, 'replicas must be at least 1, got -2: a table needs somewhere to keep its data.'),
    ({'replicas': 'many'}, "replicas must be an integer or a mapping of server tag to count, got 'many'."),
    ({'replicas': {'dc1': 0}, 'primary_replica_tag': 'dc1'}, 'replicas must add up to at least 1: a table needs somewhere to keep its data.'),
    ({'replicas': {'dc1': -1, 'dc2': 1}, 'primary_replica_tag': 'dc2'}, 'replicas: the count for tag dc1 must be a whole number of at least 0.'),
    ({'replicas': {'dc1': 2}}, 'primary_replica_tag is required when replicas is given per tag (one of dc1).'),
    ({'replicas': {'dc1': 2, 'dc2': 1}, 'primary_replica_tag': 'dc3'}, 'primary_replica_tag dc3 must be a tag with replicas in replicas (dc1, dc2).'),
    ({'replicas': 2, 'primary_replica_tag': 'dc1'}, 'primary_replica_tag dc1 needs replicas given per tag, e.g. {dc1: 1, ...}.'),
    ({'replicas': {'ssd': 1}, 'primary_replica_tag': 'ssd'}, 'No connected server has the tag ssd (tags: dc1, dc2, default).'),
    ({'replicas': {'dc1': 1}, 'primary_replica_tag': 'dc1', 'nonvoting_replica_tags': ['dc2']},
     'nonvoting_replica_tags dc2 must be tags of replicas (dc1).'),
    ({'replicas': 1, 'shards': 65}, 'shards must be between 1 and 64, got 65.'),
    ({'replicas': 1, 'database': 'bigchaindb'}, 'Database bigchaindb does not exist on the cluster at localhost:28015 (databases: bigchain).'),
    ({'replicas': 1, 'tables': ['votes', 'blocks']}, 'Table blocks does not exist in database bigchain (tables: backlog, bigchain, votes).'),
])
def test_bad_input_is_refused_before_anything_changes(install, capsys, args, message):
    cluster = install(FakeCluster(copy.deepcopy(ONE_REPLICA)))

    result = run_module(replicas.main, args, capsys)

    assert result['failed']
    assert result['msg'] == message
    assert cluster.reconfigures == []


def test_the_servers_reason_is_passed_on_and_nothing_applied(install, capsys):
    reason = ("Can't put 5 replicas on servers with the tag `default` because there are only 3 servers with the tag `default`. "
              "It's impossible to have more replicas of the data than there are servers.")
    cluster = install(FakeCluster(copy.deepcopy(ONE_REPLICA), reconfigure_error=ReqlFailure(reason)))

    result = run_module(replicas.main, {'replicas': 5}, capsys)

    assert result['msg'] == 'Cannot reconfigure bigchain.backlog: ' + reason
    assert [options['dry_run'] for _name, options in cluster.reconfigures] == [True]


def test_wait_timeout_names_the_replicas_not_ready(install, capsys):
    install(FakeCluster(copy.deepcopy(ONE_REPLICA), wait_error=ReqlFailure('Timed out while waiting for tables.')))

    result = run_module(replicas.main, {'replicas': 2, 'tables': ['votes'], 'wait_timeout': 7}, capsys)

    assert result['failed'] and result['changed']
    assert result['msg'] == 'Tables not all_replicas_ready after 7 seconds: bigchain.votes (node3 disconnected).'
    assert result['not_ready']['bigchain.votes'][0] == {'shard': 1, 'server': 'node3', 'state': 'disconnected'}


def test_a_table_without_reachable_replicas_is_refused(install, capsys):
    unavailable = {'db': 'bigchain', 'id': 'id-votes', 'name': 'votes', 'error': 'None of the replicas for this table are accessible.'}
    cluster = install(FakeCluster([table('backlog', shard('node1')), unavailable]))

    result = run_module(replicas.main, {'replicas': 2}, capsys)

    assert result['msg'] == ('Cannot reconfigure unavailable tables of bigchain: votes (None of the replicas for this table are accessible); '
                             'start the servers that hold them first.')
    assert cluster.reconfigures == []
