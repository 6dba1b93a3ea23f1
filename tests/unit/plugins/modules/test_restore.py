"""The restore module through main() with engine: tool, the driver and the restore tool replaced by fakes."""

from __future__ import annotations

import json
import os
import stat
import sys

import pytest
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bigchaindb.rethinkdb.plugins.modules import restore
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.fake_reql import Connection, FakeR, names, run_module
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.module_utils.test_dump_archive import (
    TOP, info_json, sample_tables, sha256_of, table_members, write_archive)

PASSWORD = 'correct horse'
SUMMARY = '  120 rows imported to 2 tables in 0.55 secs'


class FakeCluster:
    """The cluster as the module sees it through the fake driver: tables with a primary key and a count."""

    def __init__(self):
        self.tables = {}
        self.connects = 0
        self.connection = Connection()

    def answer(self, chain):
        steps = names(chain)
        if steps == ('db', 'table') and chain[1][1] == ('table_config',):
            return [{'db': name.split('.')[0], 'name': name.split('.')[1], 'primary_key': table['primary_key']}
                    for name, table in self.tables.items()]
        name = '%s.%s' % (chain[0][1][0], chain[1][1][0])
        if steps == ('db', 'table', 'wait'):
            return {'ready': 1}
        if steps == ('db', 'table', 'count'):
            return self.tables[name]['count']
        raise AssertionError('unexpected query %r' % (steps,))

    def connect(self, module):
        self.connects += 1
        return FakeR(self.answer), self.connection


class FakeRestoreTool:
    """Stands in for run_command running `rethinkdb restore`: records what the tool would get and loads the
    archive's counts into the fake cluster, or fails like the tool after creating the first table."""

    def __init__(self, cluster: FakeCluster, counts: dict):
        self.cluster = cluster
        self.counts = counts
        self.rc, self.stdout, self.stderr = 0, 'Extracting archive file...\n' + SUMMARY + '\n', ''
        self.loaded = {}
        self.calls = []

    def __call__(self, argv, **options):
        password_path = argv[argv.index('--password-file') + 1] if '--password-file' in argv else None
        record = dict(argv=argv, environment=dict(os.environ, **(options.get('environ_update') or {})))
        if password_path:
            with open(password_path, encoding='utf-8') as stream:
                record.update(password=stream.read(), password_mode=stat.S_IMODE(os.stat(password_path).st_mode))
        self.calls.append(record)
        imported = [argv[index + 1] for index, flag in enumerate(argv) if flag == '--import'] or list(self.counts)
        for name in imported[:1] if self.rc else imported:
            table = self.cluster.tables.setdefault(name, {'primary_key': 'id', 'count': 0})
            table['count'] += self.loaded.get(name, self.counts[name])
        return self.rc, self.stdout, self.stderr

    @property
    def argv(self) -> list:
        return self.calls[-1]['argv']


def run_tool_engine(args: dict, capsys) -> dict:
    """The module run with engine: tool, which these fakes stand in for."""
    return run_module(restore.main, dict({'engine': 'tool'}, **args), capsys)


@pytest.fixture(name='cluster')
def fake_cluster(monkeypatch):
    cluster = FakeCluster()
    monkeypatch.setattr(restore, 'connect', cluster.connect)
    return cluster


@pytest.fixture(name='archive')
def sample_archive(tmp_path):
    return write_archive(tmp_path / 'bigchain.tar.gz', table_members(sample_tables()))


@pytest.fixture(name='tool')
def fake_tool(cluster, monkeypatch):
    tool = FakeRestoreTool(cluster, {'bigchain.bigchain': 30, 'bigchain.votes': 90})
    monkeypatch.setattr(AnsibleModule, 'run_command', lambda module, argv, **options: tool(argv, **options))
    return tool


@pytest.fixture(name='scratch')
def scratch_dir(tmp_path):
    path = tmp_path / 'scratch'
    path.mkdir()
    return path


def test_restores_every_table_and_checks_the_counts(cluster, tool, archive, scratch, capsys, monkeypatch):
    monkeypatch.setenv('RETHINKDB_DRIVER_PORT', '28015')

    result = run_tool_engine({'archive': archive, 'sha256': sha256_of(archive), 'temp_dir': str(scratch),
                              'login_password': PASSWORD}, capsys)

    assert result['changed'] is True
    assert result['tables'] == {
        'bigchain.bigchain': {'documents': 30, 'documents_after': 30, 'existed': False},
        'bigchain.votes': {'documents': 90, 'documents_after': 90, 'existed': False},
    }
    assert (result['documents'], result['summary'], result['sha256']) == (120, SUMMARY.strip(), sha256_of(archive))
    argv = tool.argv
    tool_temp = argv[argv.index('--temp-dir') + 1]
    password_path = argv[argv.index('--password-file') + 1]
    assert argv == [sys.executable, '-m', 'rethinkdb', 'restore', archive, '--host-name', 'localhost', '--driver-port', '28015',
                    '--user', 'admin', '--password-file', password_path, '--temp-dir', tool_temp, '--clients', '3']
    assert result['cmd'] == argv
    assert os.path.dirname(tool_temp) == str(scratch) and os.listdir(str(scratch)) == []
    assert (tool.calls[0]['password'], tool.calls[0]['password_mode']) == (PASSWORD, 0o600)
    assert not os.path.exists(password_path)
    assert 'RETHINKDB_DRIVER_PORT' not in tool.calls[0]['environment']
    assert PASSWORD not in json.dumps(result)


def test_every_option_reaches_the_tool(cluster, tool, archive, scratch, capsys):
    cluster.tables['bigchain.votes'] = {'primary_key': 'id', 'count': 10}
    tool.loaded = {'bigchain.votes': 80}

    result = run_tool_engine({'archive': archive, 'tables': ['bigchain.votes'], 'force': True, 'create_indexes': False,
                              'hard_durability': True, 'clients': 7, 'temp_dir': str(scratch)}, capsys)

    argv = tool.argv
    assert argv[5:] == ['--host-name', 'localhost', '--driver-port', '28015', '--user', 'admin',
                        '--temp-dir', argv[argv.index('--temp-dir') + 1], '--clients', '7', '--force', '--no-secondary-indexes',
                        '--hard-durability', '--import', 'bigchain.votes']
    assert result['tables'] == {'bigchain.votes': {'documents': 90, 'documents_after': 90, 'existed': True}}


def test_a_database_selects_its_tables_in_the_archive(cluster, tool, archive, capsys):
    result = run_tool_engine({'archive': archive, 'tables': ['bigchain']}, capsys)

    assert sorted(result['tables']) == ['bigchain.bigchain', 'bigchain.votes']
    assert tool.argv[-2:] == ['--import', 'bigchain.votes'] and tool.argv.count('--import') == 2


def truncate(path: str, size: int) -> None:
    with open(path, 'rb') as stream:
        data = stream.read(size)
    with open(path, 'wb') as stream:
        stream.write(data)


@pytest.mark.parametrize('spoil, args, message', [
    (None, {'sha256': '0' * 64}, 'Archive {archive} has sha256 {sha256}, expected {zeros}: it is not the archive that was recorded, or it was damaged.'),
    (lambda path: truncate(path, os.path.getsize(path) // 2), {}, 'Archive {archive} is not a usable rethinkdb dump: it is truncated or corrupt '),
    (lambda path: write_archive(path, table_members(sample_tables()) + [(TOP + '/../../etc/x.json', b'[]')]), {},
     "Archive {archive} is not a usable rethinkdb dump: member 'rethinkdb_dump_2026-11-24T16:30:00/../../etc/x.json' has an absolute"),
    (lambda path: write_archive(path, [(TOP + '/bigchain/votes.json', b'[\n]\n')]), {},
     'Archive {archive} is not a usable rethinkdb dump: table bigchain.votes has data but no .info file.'),
    (lambda path: write_archive(path, [(TOP + '/db/t.info', info_json('t')), (TOP + '/db/t.json', b'[{"id": 1},')]), {},
     'Archive {archive} is not a usable rethinkdb dump: rethinkdb_dump_2026-11-24T16:30:00/db/t.json ends before its JSON array is closed.'),
    (None, {'tables': ['bigchain.backlog']},
     'Table bigchain.backlog is not in the archive {archive} (tables: bigchain.bigchain, bigchain.votes).'),
    (None, {'tables': ['other']}, 'Database other is not in the archive {archive} (tables: bigchain.bigchain, bigchain.votes).'),
    (None, {'tables': []}, 'tables is empty: name the tables to restore, or leave it unset to restore them all.'),
    (None, {'sha256': 'abc'}, "sha256 'abc' is not a sha256 in hex (64 characters)."),
    (os.unlink, {}, 'Archive {archive} does not exist or is not a file.'),
])
def test_a_bad_archive_or_request_fails_before_the_cluster_is_touched(cluster, tool, archive, capsys, spoil, args, message):
    sha256 = sha256_of(archive)
    if spoil:
        spoil(archive)

    result = run_tool_engine(dict(args, archive=archive), capsys)

    assert result['failed'] is True
    assert result['msg'].startswith(message.format(archive=archive, sha256=sha256, zeros='0' * 64))
    assert '\n' not in result['msg']
    assert cluster.connects == 0 and tool.calls == []


def test_existing_tables_are_refused_without_force(cluster, tool, archive, capsys):
    cluster.tables['bigchain.votes'] = {'primary_key': 'id', 'count': 5}

    result = run_tool_engine({'archive': archive}, capsys)

    assert result['msg'] == ('bigchain.votes already exists on the cluster at localhost:28015: set force: true to restore into it '
                             '(documents with the same primary key are replaced), drop it first, or restore only the missing table '
                             'with tables: bigchain.bigchain.')
    assert tool.calls == [] and cluster.tables['bigchain.votes']['count'] == 5


def test_force_does_not_mix_primary_keys(cluster, tool, archive, capsys):
    cluster.tables['bigchain.votes'] = {'primary_key': 'vote_id', 'count': 5}

    result = run_tool_engine({'archive': archive, 'force': True}, capsys)

    assert result['msg'] == ("bigchain.votes exists on the cluster at localhost:28015 with primary key vote_id, but the archive's "
                             'is id: drop the table to restore it.')
    assert tool.calls == []


def test_force_restores_into_existing_tables_that_keep_their_other_documents(cluster, tool, archive, capsys):
    cluster.tables['bigchain.votes'] = {'primary_key': 'id', 'count': 7}

    result = run_tool_engine({'archive': archive, 'force': True}, capsys)

    assert result['tables']['bigchain.votes'] == {'documents': 90, 'documents_after': 97, 'existed': True}
    assert result['tables']['bigchain.bigchain'] == {'documents': 30, 'documents_after': 30, 'existed': False}
    assert '--force' in tool.argv


@pytest.mark.parametrize('existing, loaded, message', [
    (None, 29, 'The restore did not load the archive fully: bigchain.bigchain has 29 documents after the restore, the archive holds 30.'),
    (None, 31, 'The restore did not load the archive fully: bigchain.bigchain has 31 documents after the restore, the archive holds 30.'),
    (0, 29, 'The restore did not load the archive fully: bigchain.bigchain has 29 documents after the restore, the archive holds 30.'),
])
def test_a_count_that_does_not_fit_the_archive_fails_naming_both_counts(cluster, tool, archive, capsys, existing, loaded, message):
    if existing is not None:
        cluster.tables['bigchain.bigchain'] = {'primary_key': 'id', 'count': existing}
    tool.loaded = {'bigchain.bigchain': loaded}

    result = run_tool_engine({'archive': archive, 'force': existing is not None}, capsys)

    assert result['msg'] == message
    assert result['changed'] is True and result['cmd'] == tool.argv
    assert result['tables']['bigchain.bigchain']['documents_after'] == loaded


def test_a_failing_tool_names_the_tables_it_created(cluster, tool, archive, scratch, capsys):
    tool.rc, tool.stdout = 1, 'Extracting archive file...\nImporting from directory...\n'
    tool.stderr = "Connection error during 'batch': Connection is closed.\nError: import failed: Errors occurred during import\n"

    result = run_tool_engine({'archive': archive, 'login_password': PASSWORD, 'temp_dir': str(scratch)}, capsys)

    assert result['msg'] == ("rethinkdb restore lost the cluster at localhost:28015: Connection error during 'batch': Connection is closed; "
                             'check that its servers run and its tables are available (bigchaindb.rethinkdb.info), then run the task again. '
                             'Tables it created: bigchain.bigchain; drop them, or restore again with force: true.')
    assert (result['rc'], result['stdout'], result['stderr'], result['cmd']) == (1, tool.stdout.strip(), tool.stderr.strip(), tool.argv)
    assert result['changed'] is True
    assert os.listdir(str(scratch)) == []
    assert not os.path.exists(tool.argv[tool.argv.index('--password-file') + 1])


def test_a_tool_out_of_space_gives_a_clear_error(cluster, tool, archive, scratch, capsys):
    tool.rc, tool.stderr = 1, "[Errno 28] No space left on device: '%s/tmpx/bigchain/votes.json'\n" % scratch

    result = run_tool_engine({'archive': archive, 'temp_dir': str(scratch)}, capsys)

    assert result['msg'].startswith('rethinkdb restore ran out of disk space unpacking in %s: free some space there, or set temp_dir '
                                    'to a directory with more room.' % scratch)


def test_too_little_room_to_unpack_is_refused_before_the_cluster_is_touched(cluster, tool, archive, scratch, capsys, monkeypatch):
    monkeypatch.setattr(restore, 'free_bytes', lambda path: 1000)
    needed = sum(len(data) for name, data in table_members(sample_tables()))

    result = run_tool_engine({'archive': archive, 'temp_dir': str(scratch)}, capsys)

    assert result['msg'] == ('Not enough space in %s to unpack the archive: it needs %d bytes, 1000 are free; free some space there, '
                             'or set temp_dir to a directory with more room.' % (scratch, needed))
    assert cluster.connects == 0 and tool.calls == []


def test_check_mode_runs_every_check_and_restores_nothing(cluster, tool, archive, capsys):
    cluster.tables['bigchain.votes'] = {'primary_key': 'id', 'count': 5}

    planned = run_tool_engine({'archive': archive, 'force': True, '_ansible_check_mode': True}, capsys)
    refused = run_tool_engine({'archive': archive, '_ansible_check_mode': True}, capsys)

    assert planned['changed'] is True
    assert planned['tables'] == {
        'bigchain.bigchain': {'documents': 30, 'documents_after': None, 'existed': False},
        'bigchain.votes': {'documents': 90, 'documents_after': None, 'existed': True},
    }
    assert planned['documents'] == 120
    assert refused['failed'] is True and 'set force: true' in refused['msg']
    assert tool.calls == [] and cluster.tables == {'bigchain.votes': {'primary_key': 'id', 'count': 5}}
