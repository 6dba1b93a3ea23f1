"""driver_tools: the tools' argv, password file and environment, and their output."""

from __future__ import annotations

import os
import stat
import sys

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.driver_tools import (
    DUMP_SUMMARY,
    RESTORE_SUMMARY,
    ToolRun,
    check_password,
    parse_selector,
    password_file,
    run_tool,
    tool_argv,
)

LOGIN = dict(login_host='db1.example.org', login_port=28015, login_user='admin', password_file=None, tls_ca_file=None)


# -- argv


def test_dump_argv_maps_every_option_to_its_flag():
    argv = tool_argv('dump', dict(LOGIN, login_user='backup', password_file='/tmp/pw', tls_ca_file='/etc/ca.pem',
                                  file='/b/d.tar.gz', temp_dir='/scratch', clients=5, read_outdated=True,
                                  tables=['bigchain.bigchain', 'bigchain']))

    assert argv == [sys.executable, '-m', 'rethinkdb', 'dump',
                    '--host-name', 'db1.example.org', '--driver-port', '28015', '--user', 'backup',
                    '--password-file', '/tmp/pw', '--tls-cert', '/etc/ca.pem',
                    '--file', '/b/d.tar.gz', '--temp-dir', '/scratch', '--clients', '5', '--read-outdated',
                    '--export', 'bigchain.bigchain', '--export', 'bigchain']


def test_dump_argv_leaves_out_unset_options():
    argv = tool_argv('dump', dict(LOGIN, file='/b/d.tar.gz', temp_dir=None, clients=3, read_outdated=False, tables=[]))

    assert argv[4:] == ['--host-name', 'db1.example.org', '--driver-port', '28015', '--user', 'admin', '--file', '/b/d.tar.gz', '--clients', '3']


@pytest.mark.parametrize('options, flags', [
    (dict(force=False, create_indexes=True, hard_durability=False, tables=[]), []),
    (dict(force=True, create_indexes=False, hard_durability=True, tables=['bigchain.votes', 'other']),
     ['--force', '--no-secondary-indexes', '--hard-durability', '--import', 'bigchain.votes', '--import', 'other']),
])
def test_restore_argv_puts_the_archive_first_as_an_absolute_path(options, flags, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)

    argv = tool_argv('restore', dict(LOGIN, temp_dir='/scratch', clients=2, **options), positional=('-odd.tar.gz',))

    assert argv[:5] == [sys.executable, '-m', 'rethinkdb', 'restore', str(tmp_path / '-odd.tar.gz')]
    assert argv[5:] == ['--host-name', 'db1.example.org', '--driver-port', '28015', '--user', 'admin',
                        '--temp-dir', '/scratch', '--clients', '2'] + flags


@pytest.mark.parametrize('name, parsed', [('bigchain.votes', ('bigchain', 'votes')), ('bigchain', ('bigchain', None)),
                                          ('my-db.table_2', ('my-db', 'table_2'))])
def test_selectors_name_a_table_or_a_database(name, parsed):
    assert parse_selector(name) == parsed


@pytest.mark.parametrize('name', ['', '.votes', 'bigchain.', 'a.b.c', 'big chain', 'rethinkdb.users', 'rethinkdb', 'db/../x'])
def test_other_selectors_are_refused(name):
    with pytest.raises(ValueError):
        parse_selector(name)


# -- password file and environment


def test_the_password_file_is_private_and_removed(tmp_path):
    with password_file('s3cret', str(tmp_path)) as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with open(path, encoding='utf-8') as stream:
            assert stream.read() == 's3cret'
    assert not os.path.exists(path)
    assert os.listdir(str(tmp_path)) == []


def test_the_password_file_is_removed_when_the_block_fails(tmp_path):
    with pytest.raises(RuntimeError):
        with password_file('s3cret', str(tmp_path)):
            raise RuntimeError('tool crashed')
    assert os.listdir(str(tmp_path)) == []


def test_no_password_needs_no_file(tmp_path):
    with password_file('', str(tmp_path)) as path:
        assert path is None


def test_a_password_ending_in_a_newline_cannot_be_passed():
    check_password('fine\npassword')
    with pytest.raises(ValueError, match='newline'):
        check_password('password\n')


class RecordingModule:
    """Stands in for AnsibleModule.run_command; records argv, options and the environment the child gets."""

    def __init__(self, rc=0, stdout='', stderr=''):
        self.answer = (rc, stdout, stderr)
        self.calls = []

    def run_command(self, argv, **options):
        child_environment = dict(os.environ)
        child_environment.update(options.get('environ_update') or {})
        self.calls.append(dict(argv=argv, options=options, environment=child_environment))
        return self.answer


def test_tools_run_without_the_driver_port_variable(monkeypatch):
    monkeypatch.setenv('RETHINKDB_DRIVER_PORT', '28015')
    module = RecordingModule(stdout='Done')

    run = run_tool(module, ['python', '-m', 'rethinkdb', 'dump'])

    assert 'RETHINKDB_DRIVER_PORT' not in module.calls[0]['environment']
    assert module.calls[0]['environment']['PYTHONIOENCODING'] == 'utf-8'
    assert os.environ['RETHINKDB_DRIVER_PORT'] == '28015'
    assert (run.rc, run.stdout, run.argv) == (0, 'Done', ['python', '-m', 'rethinkdb', 'dump'])


# -- output


DUMP_STDOUT = ("NOTE: 'rethinkdb-dump' saves data...\n  Exporting to temporary directory...\n"
               "\r    [          ]   0%\x1b[K\r    [==========] 100%\x1b[K\n"
               "    157 rows exported from 2 tables, with 12 secondary indexes, and 0 hook functions\n"
               "  Zipping export directory...\nDone (0.33 seconds): /b/.d.partial/d.tar.gz\n")


def test_output_keeps_the_last_state_of_progress_bars_and_the_summary():
    run = ToolRun([], 0, DUMP_STDOUT, '', 1.0)

    assert '    [==========] 100%' in run.stdout.splitlines()
    assert '\r' not in run.stdout and '\x1b' not in run.stdout
    assert run.summary(DUMP_SUMMARY) == '157 rows exported from 2 tables, with 12 secondary indexes, and 0 hook functions'
    assert ToolRun([], 0, 'Importing...\n  1 row imported to 1 table in 0.10 secs\n', '', 1.0).summary(RESTORE_SUMMARY) == \
        '1 row imported to 1 table in 0.10 secs'
    assert ToolRun([], 0, 'something else\n', '', 1.0).summary(DUMP_SUMMARY) == 'something else'


@pytest.mark.parametrize('stderr, reason', [
    ('Usage: rethinkdb dump [-c HOST:PORT] ...\n\npython -m rethinkdb dump: error: Unable to connect to server: '
     'Could not connect to localhost:1. Error: [Errno 111] Connection refused\n',
     'Unable to connect to server: Could not connect to localhost:1. Error: [Errno 111] Connection refused'),
    ("Error: Table not found: 'bigchain.nope'\nTraceback (most recent call last):\n  File \"x.py\", line 1, in main\n"
     "RuntimeError: Error: Table not found: 'bigchain.nope'\nError: export failed, Error: Table not found: 'bigchain.nope'\n",
     "Table not found: 'bigchain.nope'"),
    ('Process Process-3:\nTraceback (most recent call last):\n  File "w.py", line 2\n[Errno 28] No space left on device\n'
     'Error: export failed, Errors occurred during export\n', '[Errno 28] No space left on device'),
    ('Error: import failed: The following tables already exist, run with --force to import into the existing tables:\n'
     '  bigchain.votes\n', 'import failed: The following tables already exist, run with --force to import into the existing tables'),
    ('Error: import failed: Errors occurred during import\n', 'import failed: Errors occurred during import'),
    ('', 'no error message'),
])
def test_the_reason_is_the_most_telling_error_line(stderr, reason):
    assert ToolRun([], 1, '', stderr, 1.0).reason() == reason


def test_running_out_of_space_is_recognised():
    assert ToolRun([], 1, '', "[Errno 28] No space left on device: '/b/x'\n", 1.0).out_of_space()
    assert ToolRun([], 1, '', 'Disk quota exceeded\n', 1.0).out_of_space()
    assert not ToolRun([], 1, '', "Table not found: 'a.b'\n", 1.0).out_of_space()
