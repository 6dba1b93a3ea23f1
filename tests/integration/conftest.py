"""Integration fixtures: a local cluster (test server, or real servers with RETHINKDB_BIN) and real
ansible-playbook runs against its generated inventory, whose task results come back as data; an SSH lab of
nodes in network namespaces (tests/harness/sshlab) and an S3 store (tests/harness/s3server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from ansible_collections.bigchaindb.rethinkdb.tests.harness import s3server, sshlab
from ansible_collections.bigchaindb.rethinkdb.tests.harness.cluster import Cluster

REPO = Path(__file__).resolve().parents[2]
CALLBACKS = Path(__file__).resolve().parent / 'callback_plugins'
PLAYBOOK_TIMEOUT = 600


class PlaybookRun:
    """The outcome of one ansible-playbook run: exit status, printed output and every task result."""

    def __init__(self, completed: subprocess.CompletedProcess, records: list):
        self.rc = completed.returncode
        self.output = completed.stdout + completed.stderr
        self.records = records

    def results(self, task: str, host: str | None = None) -> list:
        """Results of the tasks named `task` that ran (were not skipped), optionally on one host."""
        return [entry['result'] for entry in self.records
                if entry['task'] == task and host in (None, entry['host']) and entry['status'] != 'skipped']

    def result(self, task: str, host: str | None = None) -> dict:
        """The single result of a task; fails the test if there is not exactly one."""
        found = self.results(task, host)
        assert len(found) == 1, 'task %r ran %d times (host %s)\n%s' % (task, len(found), host, self.output[-4000:])
        return found[0]

    def failures(self) -> list:
        """Every failed task result (task, host, msg)."""
        return [(entry['task'], entry['host'], entry['result'].get('msg')) for entry in self.records if entry['status'] == 'failed']


class Ansible:
    """Runs ansible-playbook with the collection from this checkout, against one inventory; `command_prefix`
    runs it through another command (the SSH lab's controller namespace)."""

    def __init__(self, workdir: Path, inventory: Path, collections_path: Path = REPO / '.build' / 'collections',
                 command_prefix: list | None = None):
        self.workdir = workdir
        self.inventory = inventory
        self.collections_path = collections_path
        self.command_prefix = list(command_prefix or [])
        self.runs = 0

    def command(self, playbook, extra_vars: dict | None = None, check: bool = False, diff: bool = False,
                limit: str | None = None, forks: int = 10) -> tuple:
        """(argv, environment, record file) of one ansible-playbook run: a path, a collection playbook name,
        or YAML text (written to a file)."""
        self.runs += 1
        record_file = self.workdir / ('run%d.jsonl' % self.runs)
        if isinstance(playbook, str) and '\n' in playbook:
            path = self.workdir / ('playbook%d.yml' % self.runs)
            path.write_text(textwrap.dedent(playbook))
            playbook = str(path)
        argv = self.command_prefix + [str(Path(sys.executable).parent / 'ansible-playbook'), '-i', str(self.inventory), str(playbook), '--forks', str(forks)]
        if extra_vars:
            vars_file = self.workdir / ('vars%d.json' % self.runs)
            vars_file.write_text(json.dumps(extra_vars))
            argv += ['-e', '@%s' % vars_file]
        if check:
            argv.append('--check')
        if diff:
            argv.append('--diff')
        if limit:
            argv += ['--limit', limit]
        env = dict(os.environ,
                   ANSIBLE_COLLECTIONS_PATH=str(self.collections_path),
                   ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
                   ANSIBLE_CALLBACKS_ENABLED='record,pause',
                   ANSIBLE_NOCOLOR='1',
                   ANSIBLE_HOST_KEY_CHECKING='False',
                   ANSIBLE_RETRY_FILES_ENABLED='False',
                   ANSIBLE_LOCAL_TEMP=str(self.workdir / 'ansible-tmp'),
                   RECORD_FILE=str(record_file))
        return argv, env, record_file

    def playbook(self, playbook, extra_vars: dict | None = None, check: bool = False, diff: bool = False,
                 limit: str | None = None, expect_rc: int | None = 0, forks: int = 10) -> PlaybookRun:
        """Run a playbook to its end and return what it did."""
        argv, env, record_file = self.command(playbook, extra_vars, check, diff, limit, forks)
        completed = subprocess.run(argv, env=env, cwd=self.workdir, capture_output=True, text=True, timeout=PLAYBOOK_TIMEOUT, check=False)
        run = PlaybookRun(completed, read_records(record_file))
        if expect_rc is not None:
            assert run.rc == expect_rc, 'ansible-playbook exited %d, expected %d\n%s' % (run.rc, expect_rc, run.output[-6000:])
        return run

    def module(self, name: str, args: dict, host: str = 'node1', expect_failure: bool = False, check: bool = False, diff: bool = False) -> dict:
        """Run one module of the collection on one inventory host through a one-task playbook."""
        playbook = [{'name': 'one module', 'hosts': host, 'gather_facts': False,
                     'tasks': [{'name': 'module under test', 'bigchaindb.rethinkdb.' + name: args}]}]
        path = self.workdir / ('module%d.yml' % (self.runs + 1))
        path.write_text(yaml.safe_dump(playbook, sort_keys=False))
        run = self.playbook(path, check=check, diff=diff, expect_rc=2 if expect_failure else 0)
        return run.result('module under test', host)


def read_records(record_file: Path) -> list:
    """The task results the record callback wrote (none if the run ended before any)."""
    if not record_file.exists():
        return []
    return [json.loads(line) for line in record_file.read_text().splitlines() if line.strip()]


@pytest.fixture(name='cluster_factory')
def fixture_cluster_factory(tmp_path_factory):
    """Start clusters (torn down after the test) with any Cluster() arguments."""
    started = []

    def start(size: int = 3, **options) -> Cluster:
        cluster = Cluster(tmp_path_factory.mktemp('cluster'), size=size, **options)
        started.append(cluster)
        cluster.start()
        return cluster

    yield start
    for cluster in started:
        cluster.teardown()


@pytest.fixture(name='cluster')
def fixture_cluster(cluster_factory):
    """A fresh 3-node cluster."""
    return cluster_factory(3)


def write_inventory(cluster: Cluster, path: Path, **group_vars) -> Path:
    """The cluster's inventory with extra variables for its group (backup root and the like)."""
    inventory = cluster.inventory()
    inventory['all']['children']['rethinkdb'].setdefault('vars', {}).update(group_vars)
    path.write_text(yaml.safe_dump(inventory, default_flow_style=False, sort_keys=False))
    return path


@pytest.fixture(name='ansible')
def fixture_ansible(cluster, tmp_path):
    """ansible-playbook against the fresh cluster's inventory, with backups under tmp_path/backups."""
    inventory = write_inventory(cluster, tmp_path / 'inventory.yml', rethinkdb_backup_root=str(tmp_path / 'backups'),
                                rethinkdb_backup_node_dir=str(tmp_path / 'node-dirs'))
    return Ansible(tmp_path, inventory)


@pytest.fixture(name='lab_factory')
def fixture_lab_factory():
    """Start SSH labs (torn down after the test) with any Lab() arguments; skips where no lab can be made."""
    started = []

    def start(size: int = 3, **options) -> sshlab.Lab:
        reason = sshlab.unavailable(options.get('data_fs'))
        if reason:
            pytest.skip('SSH lab: %s' % reason)
        lab = sshlab.Lab(size=size, **options)
        started.append(lab)
        lab.launch()
        return lab

    yield start
    for lab in started:
        lab.teardown()


@pytest.fixture(name='lab')
def fixture_lab(lab_factory):
    """A fresh 3-node SSH lab."""
    return lab_factory(3)


@pytest.fixture(name='lab_ansible')
def fixture_lab_ansible(lab, tmp_path):
    """ansible-playbook inside the lab's controller namespace, against the lab's inventory (SSH, become)."""
    return Ansible(tmp_path, lab.write_inventory(tmp_path / 'inventory.yml'), command_prefix=lab.controller_argv())


@pytest.fixture(name='s3_store')
def fixture_s3_store(tmp_path_factory):
    """An S3 store (moto on loopback, or RETHINKDB_S3_ENDPOINT's) for one test; skips where none can be had."""
    reason = s3server.unavailable()
    if reason:
        pytest.skip('S3 store: %s' % reason)
    with s3server.S3Store(tmp_path_factory.mktemp('s3')) as store:
        yield store
