"""Child processes of the benchmark: checked commands and pipelines, the collection's modules run directly,
and ansible-playbook runs whose task results come back as data.

Every command is an argv list; every process of a pipeline has its exit status checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
COLLECTIONS = REPO / '.build' / 'collections'
# The integration tests' callback: every task result as one JSON line in $RECORD_FILE.
RECORD_CALLBACKS = REPO / 'tests' / 'integration' / 'callback_plugins'
MODULE_PACKAGE = 'ansible_collections.bigchaindb.rethinkdb.plugins.modules'
# Variables the driver's tools must not see (RETHINKDB_DRIVER_PORT makes them exit 2).
HIDDEN_VARIABLES = ('RETHINKDB_DRIVER_PORT',)
TAIL_CHARS = 3000


class BenchError(Exception):
    """A step of the benchmark failed; the message says which command and why."""


def child_environment(**extra) -> dict:
    """The environment of every child: the collection importable and found by Ansible, the driver's tools unbroken."""
    environment = dict(os.environ)
    for name in HIDDEN_VARIABLES:
        environment.pop(name, None)
    environment.update(PYTHONPATH=os.pathsep.join([str(COLLECTIONS), str(REPO)]), ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
                       ANSIBLE_NOCOLOR='1', ANSIBLE_HOST_KEY_CHECKING='False', ANSIBLE_RETRY_FILES_ENABLED='False')
    environment.update(extra)
    return environment


def _failure(argv: list, rc: int, output: str) -> BenchError:
    return BenchError('%s exited with %d:\n%s' % (' '.join(str(part) for part in argv), rc, output[-TAIL_CHARS:]))


def run(argv: list, cwd=None, environment: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command that must succeed; its output is captured (and shown if it fails)."""
    completed = subprocess.run([str(part) for part in argv], cwd=cwd, env=environment or child_environment(), stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise _failure(argv, completed.returncode, completed.stdout + completed.stderr)
    return completed


def pipeline(producer: list, consumer: list, output_path=None) -> None:
    """producer | consumer [> output_path], both exit statuses checked (error output goes to files, so neither
    process can block on a full pipe)."""
    environment = child_environment()
    with open(output_path if output_path is not None else os.devnull, 'wb') as output, \
            tempfile.TemporaryFile() as first_errors, tempfile.TemporaryFile() as second_errors:
        with subprocess.Popen([str(part) for part in producer], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=first_errors,
                              env=environment) as first:
            with subprocess.Popen([str(part) for part in consumer], stdin=first.stdout, stdout=output, stderr=second_errors,
                                  env=environment) as second:
                first.stdout.close()
        for argv, process, errors in ((producer, first, first_errors), (consumer, second, second_errors)):
            if process.returncode != 0:
                errors.seek(0)
                raise _failure(argv, process.returncode, errors.read().decode(errors='replace'))


class ModuleRunner:
    """Runs a module of the collection directly: its Python entry point with an arguments file, as AnsiballZ
    would run it on a node, without Ansible around it."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.runs = 0

    def argv(self, name: str, args: dict) -> list:
        """The command that runs module `name` with `args` (written to a file now)."""
        self.runs += 1
        args_file = self.workdir / ('module-args-%d.json' % self.runs)
        args_file.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': args}))
        return [sys.executable, '-m', '%s.%s' % (MODULE_PACKAGE, name), str(args_file)]

    def start(self, name: str, args: dict) -> subprocess.Popen:
        """Start a module without waiting (several nodes' modules at once); finish() reads its result."""
        return subprocess.Popen(self.argv(name, args), cwd=self.workdir, env=child_environment(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @staticmethod
    def finish(name: str, process: subprocess.Popen) -> dict:
        """Wait for a started module; its result, or BenchError if it failed."""
        stdout, stderr = process.communicate()
        return _module_result(name, process.args, process.returncode, stdout, stderr)

    def call(self, name: str, args: dict) -> dict:
        """Run a module to its end; its result, or BenchError if it failed."""
        return self.finish(name, self.start(name, args))


def _module_result(name: str, argv: list, rc: int, stdout: str, stderr: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith('{')]
    result = json.loads(lines[-1]) if lines else None
    if rc != 0 or result is None or result.get('failed'):
        message = result.get('msg') if result else (stdout + stderr)[-TAIL_CHARS:]
        raise BenchError('module %s failed (exit %d, %s): %s' % (name, rc, ' '.join(argv), message))
    return result


class PlaybookRun:
    """One ansible-playbook run: its wall-clock seconds and every task result it recorded."""

    def __init__(self, seconds: float, records: list):
        self.seconds = seconds
        self.records = records

    def results(self, task: str) -> dict:
        """Results of the task named `task`, by host."""
        return {entry['host']: entry['result'] for entry in self.records if entry['task'] == task and entry['status'] == 'ok'}


class Ansible:
    """Runs ansible-playbook against one inventory, with the collection of this checkout."""

    def __init__(self, workdir: Path, inventory: dict):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.inventory = self.workdir / 'inventory.yml'
        self.inventory.write_text(yaml.safe_dump(inventory, default_flow_style=False, sort_keys=False))
        self.runs = 0

    def playbook(self, playbook, *options: str, forks: int = 10) -> PlaybookRun:
        """Run a playbook (a path or a collection playbook name); BenchError unless it succeeds."""
        self.runs += 1
        record_file = self.workdir / ('run-%d.jsonl' % self.runs)
        argv = [str(Path(sys.executable).parent / 'ansible-playbook'), '-i', str(self.inventory), str(playbook), '--forks', str(forks)]
        argv += list(options)
        environment = child_environment(ANSIBLE_CALLBACK_PLUGINS=str(RECORD_CALLBACKS), ANSIBLE_CALLBACKS_ENABLED='record',
                                        ANSIBLE_LOCAL_TEMP=str(self.workdir / 'ansible-tmp'), RECORD_FILE=str(record_file))
        started = time.perf_counter()
        completed = subprocess.run(argv, cwd=self.workdir, env=environment, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                   check=False)
        seconds = time.perf_counter() - started
        if completed.returncode != 0:
            raise _failure(argv, completed.returncode, completed.stdout + completed.stderr)
        records = [json.loads(line) for line in record_file.read_text().splitlines()] if record_file.exists() else []
        return PlaybookRun(seconds, records)

    def one_task(self, host: str, module: str, args: dict) -> PlaybookRun:
        """A play of one task: `module` (a fully qualified name) with `args` on one host, as a user's playbook runs it."""
        play = [{'name': 'bench', 'hosts': host, 'gather_facts': False,
                 'tasks': [{'name': 'module under test', module: args}]}]
        path = self.workdir / ('one-task-%s.yml' % module)
        path.write_text(yaml.safe_dump(play, sort_keys=False))
        return self.playbook(path)
