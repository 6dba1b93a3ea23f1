"""The dump module through main() with engine: tool, the driver and the dump tool replaced by fakes."""

from __future__ import annotations

import json
import os
import stat
import sys

import pytest
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import repository_local
from ansible_collections.bigchaindb.rethinkdb.plugins.modules import dump
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.fake_reql import Connection, FakeR, names, run_module
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.module_utils.test_dump_archive import sample_tables, sha256_of, table_members, write_archive

PASSWORD = 'correct horse'
SUMMARY = '    120 rows exported from 2 tables, with 2 secondary indexes, and 0 hook functions'
TABLE_CONFIG = [
    {'id': 't1', 'db': 'bigchain', 'name': 'bigchain', 'primary_key': 'id', 'indexes': ['transaction_id', 'block_timestamp']},
    {'id': 't2', 'db': 'bigchain', 'name': 'votes', 'primary_key': 'id', 'indexes': ['block_and_voter']},
    {'id': 't3', 'db': 'bigchain', 'name': 'backlog', 'primary_key': 'id', 'indexes': []},
]


class FakeDumpTool:
    """Stands in for run_command running `rethinkdb dump`: records what the tool would get (argv, options,
    environment, password file) and writes the archive of `tables` where --file says, or fails like the tool."""

    def __init__(self, tables=None, rc=0, stdout='Done\n' + SUMMARY + '\n', stderr=''):
        self.tables = sample_tables() if tables is None else tables
        self.rc, self.stdout, self.stderr = rc, stdout, stderr
        self.calls = []

    def __call__(self, argv, **options):
        environment = dict(os.environ, **(options.get('environ_update') or {}))
        password_path = argv[argv.index('--password-file') + 1] if '--password-file' in argv else None
        password = None
        if password_path:
            with open(password_path, encoding='utf-8') as stream:
                password = stream.read()
        self.calls.append(dict(argv=argv, options=options, environment=environment, password=password,
                               password_mode=stat.S_IMODE(os.stat(password_path).st_mode) if password_path else None))
        out_file = argv[argv.index('--file') + 1]
        temp_dir = argv[argv.index('--temp-dir') + 1]
        if self.rc == 0:
            write_archive(out_file, table_members(self.tables))
        else:
            with open(os.path.join(temp_dir, 'half-exported.json'), 'w', encoding='utf-8') as stream:
                stream.write('[{"id": 1},')
            with open(out_file, 'wb') as stream:
                stream.write(b'\x1f\x8b partial')
        return self.rc, self.stdout, self.stderr

    @property
    def argv(self) -> list:
        return self.calls[-1]['argv']


def run_tool_engine(args: dict, capsys) -> dict:
    """The module run with engine: tool, which these fakes stand in for."""
    return run_module(dump.main, dict({'engine': 'tool'}, **args), capsys)


@pytest.fixture(name='cluster')
def fake_cluster(monkeypatch):
    """A fake connection answering table_config; records whether the module connected and closed."""
    def answer(chain):
        if names(chain) == ('db', 'table') and chain[1][1] == ('table_config',):
            return TABLE_CONFIG
        raise AssertionError('unexpected query %r' % (names(chain),))
    fake = FakeR(answer)
    fake.connection = Connection()
    fake.connects = 0

    def connect(module):
        fake.connects += 1
        return fake, fake.connection
    monkeypatch.setattr(dump, 'connect', connect)
    return fake


@pytest.fixture(name='tool')
def fake_tool(monkeypatch):
    tool = FakeDumpTool()
    monkeypatch.setattr(AnsibleModule, 'run_command', lambda module, argv, **options: tool(argv, **options))
    return tool


@pytest.fixture(name='backups')
def backup_dir(tmp_path):
    path = tmp_path / 'backups'
    path.mkdir()
    return path


def test_dumps_into_dest_with_counts_and_checksum(cluster, tool, backups, capsys, monkeypatch):
    monkeypatch.setenv('RETHINKDB_DRIVER_PORT', '28015')
    dest = backups / 'bigchain.tar.gz'

    result = run_tool_engine({'dest': str(dest), 'login_password': PASSWORD}, capsys)

    assert result['changed'] is True
    assert result['dest'] == str(dest)
    assert (result['sha256'], result['bytes']) == (sha256_of(dest), dest.stat().st_size)
    assert result['tables'] == {
        'bigchain.bigchain': {'documents': 30, 'primary_key': 'id', 'indexes': []},
        'bigchain.votes': {'documents': 90, 'primary_key': 'id', 'indexes': ['block_and_voter']},
    }
    assert result['documents'] == 120
    assert result['summary'] == SUMMARY.strip()
    assert result['cmd'] == tool.argv
    assert os.listdir(str(backups)) == ['bigchain.tar.gz']
    assert cluster.connection.closed


def test_the_password_reaches_the_tool_only_through_a_private_file(cluster, tool, backups, capsys, monkeypatch):
    monkeypatch.setenv('RETHINKDB_DRIVER_PORT', '28015')

    result = run_tool_engine({'dest': str(backups / 'd.tar.gz'), 'login_password': PASSWORD}, capsys)

    call = tool.calls[0]
    password_path = call['argv'][call['argv'].index('--password-file') + 1]
    assert (call['password'], call['password_mode']) == (PASSWORD, 0o600)
    assert not os.path.exists(password_path)
    assert PASSWORD not in json.dumps(result) and PASSWORD not in ' '.join(call['argv'])
    assert 'RETHINKDB_DRIVER_PORT' not in call['environment']
    assert os.environ['RETHINKDB_DRIVER_PORT'] == '28015'


def test_every_option_reaches_the_tool(cluster, tool, backups, tmp_path, capsys):
    scratch = tmp_path / 'scratch'
    scratch.mkdir()
    ca_file = tmp_path / 'ca.pem'
    ca_file.write_text('-----BEGIN CERTIFICATE-----\n')
    tool.tables = dict(sample_tables(), **{'bigchain.backlog': []})

    result = run_tool_engine({
        'dest': str(backups / 'd.tar.gz'), 'login_host': 'db1.example.org', 'login_port': 38015, 'login_user': 'backup',
        'tls_ca_file': str(ca_file), 'tables': ['bigchain', 'bigchain.votes'], 'clients': 5, 'read_outdated': True,
        'temp_dir': str(scratch)}, capsys)

    argv = tool.argv
    out_file, tool_temp = argv[argv.index('--file') + 1], argv[argv.index('--temp-dir') + 1]
    assert argv == [sys.executable, '-m', 'rethinkdb', 'dump',
                    '--host-name', 'db1.example.org', '--driver-port', '38015', '--user', 'backup', '--tls-cert', str(ca_file),
                    '--file', out_file, '--temp-dir', tool_temp, '--clients', '5', '--read-outdated',
                    '--export', 'bigchain', '--export', 'bigchain.votes']
    assert os.path.dirname(os.path.dirname(out_file)) == str(scratch) and out_file.startswith(tool_temp)
    assert os.path.dirname(tool_temp) == str(scratch)
    assert '--password-file' not in argv
    assert sorted(result['tables']) == ['bigchain.backlog', 'bigchain.bigchain', 'bigchain.votes']
    assert os.listdir(str(scratch)) == [] and os.listdir(str(backups)) == ['d.tar.gz']


@pytest.mark.parametrize('rc, stderr, message, shown', [
    (1, "Error: Table not found: 'bigchain.votes'\nTraceback (most recent call last):\n  File \"x\"\n"
        "Error: export failed, Error: Table not found: 'bigchain.votes'\n",
     "rethinkdb dump exited with 1: Table not found: 'bigchain.votes'.",
     "Error: Table not found: 'bigchain.votes'\nError: export failed, Error: Table not found: 'bigchain.votes'"),
    (2, 'Usage: rethinkdb dump ...\n\npython -m rethinkdb dump: error: Unable to connect to server: Could not connect to '
        'localhost:28015. Error: [Errno 111] Connection refused\n',
     'rethinkdb dump lost the cluster at localhost:28015: Unable to connect to server: Could not connect to localhost:28015. '
     'Error: [Errno 111] Connection refused; check that its servers run and its tables are available (bigchaindb.rethinkdb.info), '
     'then run the task again.',
     'Usage: rethinkdb dump ...\n\npython -m rethinkdb dump: error: Unable to connect to server: Could not connect to '
     'localhost:28015. Error: [Errno 111] Connection refused'),
    (1, "Cannot perform read: lost contact with primary replica\nErrors occurred during export\nTraceback (most recent call last):\n"
        '  File "_dump.py", line 200, in main\n    _export.run(options)\n    ~~~~~~~~~~~^^^^^^^^^\nRuntimeError: Errors occurred during export\n'
        'Error: export failed, Errors occurred during export\n',
     'rethinkdb dump lost the cluster at localhost:28015: Cannot perform read: lost contact with primary replica; check that its '
     'servers run and its tables are available (bigchaindb.rethinkdb.info), then run the task again.',
     'Cannot perform read: lost contact with primary replica\nErrors occurred during export\nRuntimeError: Errors occurred during export\n'
     'Error: export failed, Errors occurred during export'),
], ids=['error', 'unreachable', 'server-lost-mid-dump'])
def test_a_failing_tool_fails_the_task_and_leaves_no_partial_file(cluster, tool, backups, tmp_path, capsys, rc, stderr, message, shown):
    tool.rc, tool.stdout, tool.stderr = rc, 'Exporting...\n', stderr
    scratch = tmp_path / 'scratch'
    scratch.mkdir()

    result = run_tool_engine({'dest': str(backups / 'd.tar.gz'), 'login_password': PASSWORD, 'temp_dir': str(scratch)}, capsys)

    assert result['failed'] is True
    assert result['msg'] == message
    assert (result['rc'], result['stdout'], result['stderr'], result['cmd']) == (rc, 'Exporting...', shown, tool.argv)
    assert 'Traceback' not in json.dumps(result)
    assert os.listdir(str(backups)) == [] and os.listdir(str(scratch)) == []
    assert not os.path.exists(tool.argv[tool.argv.index('--password-file') + 1])
    assert PASSWORD not in json.dumps(result)


def test_a_full_filesystem_gives_a_clear_error(cluster, tool, backups, capsys):
    tool.rc, tool.stderr = 1, "[Errno 28] No space left on device\nError: export failed, Errors occurred during export\n"

    result = run_tool_engine({'dest': str(backups / 'd.tar.gz')}, capsys)

    assert result['msg'] == ('rethinkdb dump ran out of disk space writing to %s: free some space there, or choose another dest or '
                             'temp_dir.' % backups)
    assert os.listdir(str(backups)) == []


def test_an_existing_dest_is_refused_without_force_and_replaced_with_it(cluster, tool, backups, capsys):
    dest = backups / 'd.tar.gz'
    dest.write_bytes(b'yesterday')

    refused = run_tool_engine({'dest': str(dest)}, capsys)
    assert dest.read_bytes() == b'yesterday'
    replaced = run_tool_engine({'dest': str(dest), 'force': True}, capsys)

    assert refused['msg'] == 'dest %s already exists: set force: true to replace it, or choose another dest.' % dest
    assert len(tool.calls) == 1 and cluster.connects == 1
    assert replaced['sha256'] == sha256_of(dest)
    assert os.listdir(str(backups)) == ['d.tar.gz']


@pytest.mark.parametrize('tables, message', [
    (['bigchain.blocks'], 'Table bigchain.blocks does not exist on the cluster at localhost:28015 '
                          '(tables: bigchain.backlog, bigchain.bigchain, bigchain.votes).'),
    (['other'], 'Database other has no tables on the cluster at localhost:28015 (tables: bigchain.backlog, bigchain.bigchain, bigchain.votes).'),
    (['votes.'], "tables: 'votes.' is not a database or database.table name."),
    (['rethinkdb.users'], "tables: 'rethinkdb.users' is in the system database rethinkdb, which the tools do not dump or restore."),
    ([], 'tables is empty: name the tables (database.table) or databases to dump.'),
])
def test_tables_that_cannot_be_dumped_are_refused_before_the_tool_runs(cluster, tool, backups, capsys, tables, message):
    result = run_tool_engine({'dest': str(backups / 'd.tar.gz'), 'tables': tables}, capsys)

    assert result['msg'] == message
    assert tool.calls == [] and os.listdir(str(backups)) == []


@pytest.mark.parametrize('args, message', [
    ({'dest': '{backups}/missing/d.tar.gz'}, 'The directory {backups}/missing of dest does not exist or is not a directory.'),
    ({'dest': '{backups}'}, 'dest {backups} is a directory: give the path of the archive file to write.'),
    ({'dest': '{backups}/d.tar.gz', 'temp_dir': '{backups}/nowhere'},
     'The directory {backups}/nowhere of temp_dir does not exist or is not a directory.'),
    ({'dest': '{backups}/d.tar.gz', 'clients': 0}, 'clients must be at least 1, got 0.'),
    ({'dest': '{backups}/d.tar.gz', 'login_password': 'ends\n'},
     'Cannot dump: the password ends with a newline, which the rethinkdb tools strip from --password-file.'),
])
def test_paths_and_options_that_cannot_work_are_refused_before_connecting(cluster, tool, backups, capsys, args, message):
    args = dict((key, value.format(backups=backups) if isinstance(value, str) else value) for key, value in args.items())

    result = run_tool_engine(args, capsys)

    assert result['msg'] == message.format(backups=backups)
    assert cluster.connects == 0 and tool.calls == []


def test_an_archive_without_a_chosen_table_fails_and_is_removed(cluster, tool, backups, capsys):
    tool.tables = {'bigchain.bigchain': sample_tables()['bigchain.bigchain']}

    result = run_tool_engine({'dest': str(backups / 'd.tar.gz')}, capsys)

    assert result['msg'] == 'rethinkdb dump wrote an archive that does not match the tables asked for: it lacks bigchain.votes.'
    assert result['cmd'] == tool.argv
    assert os.listdir(str(backups)) == []


def test_an_archive_with_a_table_not_asked_for_fails(cluster, tool, backups, capsys):
    tool.tables = dict(sample_tables(), **{'bigchain.backlog': []})

    result = run_tool_engine({'dest': str(backups / 'd.tar.gz')}, capsys)

    assert result['msg'] == ('rethinkdb dump wrote an archive that does not match the tables asked for: '
                             'it holds tables that were not asked for: bigchain.backlog.')


def test_check_mode_checks_and_writes_nothing(cluster, tool, backups, capsys):
    result = run_tool_engine({'dest': str(backups / 'd.tar.gz'), '_ansible_check_mode': True}, capsys)

    assert result['changed'] is True
    assert result['dest'] == str(backups / 'd.tar.gz')
    assert result['tables'] == {
        'bigchain.bigchain': {'primary_key': 'id', 'indexes': ['block_timestamp', 'transaction_id']},
        'bigchain.votes': {'primary_key': 'id', 'indexes': ['block_and_voter']},
    }
    assert tool.calls == [] and os.listdir(str(backups)) == []


def test_check_mode_still_refuses_unknown_tables(cluster, tool, backups, capsys):
    result = run_tool_engine({'dest': str(backups / 'd.tar.gz'), 'tables': ['bigchain.blocks'], '_ansible_check_mode': True}, capsys)

    assert result['failed'] is True and result['msg'].startswith('Table bigchain.blocks does not exist')


def test_running_out_of_space_when_writing_the_archive_is_one_line(cluster, tool, backups, capsys, monkeypatch):
    def no_space(source, target):
        raise OSError(28, os.strerror(28), target)
    monkeypatch.setattr(repository_local.os, 'rename', no_space)

    result = run_tool_engine({'dest': str(backups / 'd.tar.gz')}, capsys)

    assert result['msg'] == ('Cannot write the archive: No space left on device; free some space there, or choose another dest '
                             'or temp_dir.')
    assert os.listdir(str(backups)) == []
