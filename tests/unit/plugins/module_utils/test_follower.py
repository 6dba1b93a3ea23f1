"""The follower program's own logic: its configuration, what it does with each feed event (documents, alarms, gaps and
the catch-ups they call for), its Prometheus figures and its status, and the password kept out of all of them."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.follower import ConfigError, Follower, load_config, metrics_lines
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository_local import LocalRepository
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.chain_sets import make_base, open_writer, votes

SECRET = 'pw-never-shown'
ROLE_PATH = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'roles', 'follower')
PROGRAM_PATH = os.path.join(ROLE_PATH, 'files', 'rethinkdb_follower.py')


def program():
    """The follower program (roles/follower/files/rethinkdb_follower.py) as a module."""
    spec = importlib.util.spec_from_file_location('rethinkdb_follower', PROGRAM_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_config(tmp_path, **settings) -> str:
    (tmp_path / 'password').write_text(SECRET + '\n')
    config = dict(cluster='rethinkdb', repository=str(tmp_path / 'backups'), servers=['127.0.0.1:28015', '[::1]:28016'],
                  state_dir=str(tmp_path / 'state'), password_file=str(tmp_path / 'password'), tables=['bigchain.bigchain', 'bigchain.votes'])
    config.update(settings)
    path = tmp_path / 'follower.json'
    path.write_text(json.dumps(config))
    return str(path)


@pytest.mark.parametrize('settings, message', [
    ({'servers': ['db1']}, "server 'db1' is not host:port"),
    ({'tables': ['votes']}, "'votes' is not a table name of the form database.table"),
    ({'seal_seconds': 0}, 'seal_seconds must be a number of at least 0.1, not 0'),
    ({'seal_documents': 2.5}, 'seal_documents must be a whole number of at least 1, not 2.5'),
    ({'cluster': 'a b'}, "cluster 'a b' is not a valid name"),
    ({'state_dir': ''}, 'setting(s) state_dir missing'),
    ({'password': SECRET}, 'unknown setting(s) password'),
])
def test_a_configuration_that_cannot_work_is_one_line(tmp_path, settings, message):
    with pytest.raises(ConfigError) as raised:
        load_config(write_config(tmp_path, **settings))
    assert message in str(raised.value) and '\n' not in str(raised.value)


def test_the_password_is_read_at_start_and_shown_nowhere(tmp_path, capsys):
    path = write_config(tmp_path)
    config = load_config(path)
    assert SECRET not in json.dumps(config)
    follower = Follower(config, None)
    assert [login.password for login in follower.config['logins']] == [SECRET, SECRET]
    assert [(login.host, login.port) for login in follower.config['logins']] == [('127.0.0.1', 28015), ('::1', 28016)]
    assert program().main(['--config', path, '--check-config']) == 0
    assert SECRET not in capsys.readouterr().out
    (tmp_path / 'password').unlink()
    with pytest.raises(ConfigError, match='cannot read password_file'):
        Follower(config, None)


def wait_for_command_line(pid: int) -> None:
    """Wait until a process just started shows its command line: Popen returns once the child's exec has
    begun (the vfork parent resumes then), a moment before the kernel sets up the new arguments."""
    deadline = time.monotonic() + 10
    while PROGRAM_PATH.encode() not in Path('/proc/%d/cmdline' % pid).read_bytes():
        assert time.monotonic() < deadline, 'process %d never showed its command line' % pid
        time.sleep(0.01)


def test_the_program_says_whether_its_daemon_runs_and_stops_it(tmp_path):
    path = write_config(tmp_path)
    pid_file = tmp_path / 'follower.pid'
    sleeper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', PROGRAM_PATH, '--config', path])
    wait_for_command_line(sleeper.pid)
    try:
        runner = program()
        assert runner.main(['--config', path, '--running', '--pid-file', str(pid_file)]) == 3
        pid_file.write_text('%d\n' % sleeper.pid)
        assert runner.main(['--config', path, '--running', '--pid-file', str(pid_file)]) == 0
        assert runner.main(['--config', str(tmp_path / 'other.json'), '--running', '--pid-file', str(pid_file)]) == 3
        assert runner.main(['--config', path, '--stop', '--pid-file', str(pid_file)]) == 0
        assert sleeper.wait(10) == -15
        assert runner.ToolRunner.run_command([sys.executable, '-c', 'import os; print(os.environ["X"])'], {'X': 'y'}) == (0, 'y\n', '')
    finally:
        sleeper.kill()
        sleeper.wait()


def test_the_role_installs_every_module_util_the_program_imports(tmp_path):
    with open(os.path.join(ROLE_PATH, 'vars', 'main.yml'), encoding='utf-8') as stream:
        role_vars = yaml.safe_load(stream)
    installed = tmp_path / 'opt' / 'ansible_collections' / 'bigchaindb' / 'rethinkdb' / 'plugins' / 'module_utils'
    installed.mkdir(parents=True)
    for name in role_vars['follower_module_utils']:
        shutil.copy(os.path.join(ROLE_PATH, '..', '..', 'plugins', 'module_utils', name), installed / name)
    shutil.copy(PROGRAM_PATH, tmp_path / 'opt' / role_vars['follower_program'])
    completed = subprocess.run([sys.executable, str(tmp_path / 'opt' / role_vars['follower_program']), '--config', write_config(tmp_path),
                                '--check-config'], env=dict(os.environ, PYTHONPATH=str(tmp_path / 'opt'), PYTHONDONTWRITEBYTECODE='1'),
                               capture_output=True, text=True, check=False)
    assert (completed.returncode, completed.stderr) == (0, '')
    assert completed.stdout.startswith('configuration %s: cluster rethinkdb, repository ' % (tmp_path / 'follower.json'))


@pytest.fixture(name='follower')
def fixture_follower(tmp_path):
    repository = LocalRepository(str(tmp_path / 'backups'))
    make_base(repository, {'bigchain.votes': votes(range(3)), 'bigchain.bigchain': []})
    follower = Follower(load_config(write_config(tmp_path, metrics_file=str(tmp_path / 'follower.prom'))), None)
    (tmp_path / 'state').mkdir()
    follower.writer = open_writer(repository, tmp_path / 'index.sqlite')
    follower.base_entry = {'set_id': follower.writer.chain['base']['set_id']}
    return follower


def test_feed_events_become_documents_alarms_and_catch_ups(follower):
    events = [
        ('change', 'bigchain.votes', {'new_val': {'id': 'vote-0007'}, 'old_val': None, 'type': 'add'}),
        ('change', 'bigchain.votes', {'new_val': {'id': 'vote-0001', 'vote': {'n': 1}}, 'old_val': None, 'type': 'add'}),
        ('change', 'bigchain.votes', {'new_val': {'id': 'vote-0002', 'n': 9}, 'old_val': {'id': 'vote-0002'}, 'type': 'change'}),
        ('change', 'bigchain.votes', {'new_val': None, 'old_val': {'id': 'vote-0000'}, 'type': 'remove'}),
        ('gap', 'bigchain.votes', 'the feed through 127.0.0.1:28015 dropped 6 changes (its queue of 100000 was full)'),
        ('ready', 'bigchain.votes', '127.0.0.1:28015'),
    ]
    for event in events:
        follower.handle(event)

    assert follower.writer.builder.tables['bigchain.votes'] == {'insert': 1, 'update': 1, 'delete': 1, 'missing': 0, 'reinsert': 0}
    assert follower.counters['documents']['bigchain.votes'] == 1
    assert follower.counters['alarms'] == {'bigchain.votes': {'update': 1, 'delete': 1}}
    assert follower.open_gaps['bigchain.votes']['reason'].startswith('the feed through 127.0.0.1:28015 dropped 6 changes')
    assert follower.pending_catchups == {'bigchain.votes': follower.generation['bigchain.votes']}
    assert follower.feeds['bigchain.votes'] == {'live': True, 'server': '127.0.0.1:28015'}


def test_the_figures_say_what_a_stalled_follower_would_not(follower, tmp_path):
    follower.handle(('change', 'bigchain.votes', {'new_val': {'id': 'vote-0008'}, 'old_val': None, 'type': 'add'}))
    follower.write_metrics()
    pending = (tmp_path / 'follower.prom').read_text()
    follower._seal()
    follower.write_status(force=True)
    sealed = (tmp_path / 'follower.prom').read_text()
    status = json.loads((tmp_path / 'state' / 'status.json').read_text())

    assert 'rethinkdb_follower_pending_records{cluster="rethinkdb"} 1' in pending
    assert 'rethinkdb_follower_last_seal_timestamp_seconds' not in pending
    assert 'rethinkdb_follower_segments_total{cluster="rethinkdb"} 1' in sealed
    assert 'rethinkdb_follower_documents_total{cluster="rethinkdb",table="bigchain.votes"} 1' in sealed
    assert 'rethinkdb_follower_chain_info{cluster="rethinkdb",chain_id="%s",base_set_id="%s"} 1' % (
        follower.writer.chain_id, follower.writer.chain['base']['set_id']) in sealed
    assert [line for line in sealed.splitlines() if line.startswith('rethinkdb_follower_lag_seconds')]
    assert (status['seq'], status['pending_records'], status['last_seal']['records']) == (1, 0, 1)
    assert all(line.startswith(('# HELP rethinkdb_follower_', '# TYPE rethinkdb_follower_', 'rethinkdb_follower_'))
               for line in metrics_lines(follower, True))
    assert SECRET not in sealed and SECRET not in json.dumps(status)


def test_the_role_installs_exactly_the_module_utils_the_program_imports():
    module_utils = os.path.join(os.path.dirname(PROGRAM_PATH), '..', '..', '..', 'plugins', 'module_utils')
    imported, reading = set(), [PROGRAM_PATH]
    while reading:
        with open(reading.pop(), encoding='utf-8') as source:
            tree = ast.parse(source.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.endswith('plugins.module_utils'):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and '.plugins.module_utils.' in node.module:
                names = [node.module.rsplit('.', 1)[1]]
            else:
                continue
            for name in set(names) - imported:
                imported.add(name)
                reading.append(os.path.join(module_utils, name + '.py'))
    with open(os.path.join(os.path.dirname(PROGRAM_PATH), '..', 'vars', 'main.yml'), encoding='utf-8') as role_vars:
        installed = yaml.safe_load(role_vars)['follower_module_utils']

    assert sorted(installed) == sorted(name + '.py' for name in imported)
