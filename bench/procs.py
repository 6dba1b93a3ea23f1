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
import threading
import time
from collections.abc import Callable
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
# How often PeakMemory samples the process trees it watches.
MEMORY_POLL_SECONDS = 0.05


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
    """Runs ansible-playbook against one inventory, with the collection of this checkout; command_prefix runs it
    elsewhere (inside a lab's controller namespace)."""

    def __init__(self, workdir: Path, inventory: dict, command_prefix: list | None = None):
        self.workdir = Path(workdir)
        self.command_prefix = list(command_prefix or [])
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.inventory = self.workdir / 'inventory.yml'
        self.inventory.write_text(yaml.safe_dump(inventory, default_flow_style=False, sort_keys=False))
        self.runs = 0

    def playbook(self, playbook, *options: str, forks: int = 10) -> PlaybookRun:
        """Run a playbook (a path or a collection playbook name); BenchError unless it succeeds."""
        self.runs += 1
        record_file = self.workdir / ('run-%d.jsonl' % self.runs)
        argv = self.command_prefix + [str(Path(sys.executable).parent / 'ansible-playbook'), '-i', str(self.inventory), str(playbook),
                                      '--forks', str(forks)]
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

    def runs_here(self, argv: list) -> bool:
        """Whether a process is an ansible-playbook run of this runner (for PeakMemory: its workers and their
        ssh clients are its descendants)."""
        return len(argv) > 1 and argv[1].endswith('ansible-playbook') and str(self.inventory) in argv

    def one_task(self, host: str, module: str, args: dict) -> PlaybookRun:
        """A play of one task: `module` (a fully qualified name) with `args` on one host, as a user's playbook runs it."""
        play = [{'name': 'bench', 'hosts': host, 'gather_facts': False,
                 'tasks': [{'name': 'module under test', module: args}]}]
        path = self.workdir / ('one-task-%s.yml' % module)
        path.write_text(yaml.safe_dump(play, sort_keys=False))
        return self.playbook(path)


def process_table() -> dict:
    """Every process of the machine now: pid -> (parent pid, argv). Lab nodes share the machine's pid namespace
    (they are network namespaces only), so their processes are here too."""
    table = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry, encoding='ascii', errors='replace') as stat:
                parent = int(stat.read().rsplit(')', 1)[1].split()[1])
            with open('/proc/%s/cmdline' % entry, 'rb') as cmdline:
                argv = cmdline.read().decode(errors='replace').split('\0')[:-1]
        except (OSError, IndexError, ValueError):
            continue
        table[int(entry)] = (parent, argv)
    return table


def with_descendants(roots: set, table: dict) -> set:
    """The roots and every process below them."""
    tree = set(roots)
    grew = True
    while grew:
        grew = False
        for pid, (parent, dummy) in table.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return tree


def resident_bytes(pid: int) -> tuple:
    """(RSS, PSS) of a process in bytes, from /proc/<pid>/smaps_rollup; (0, 0) once it is gone. PSS shares every
    page among the processes that map it, so PSS adds up over a tree (a forked worker's pages shared with its
    parent count once); RSS counts them in each."""
    values = {}
    try:
        with open('/proc/%d/smaps_rollup' % pid, encoding='ascii') as rollup:
            for line in rollup:
                name, dummy, rest = line.partition(':')
                if name in ('Rss', 'Pss'):
                    values[name] = int(rest.split()[0]) * 1024
    except (OSError, ValueError):
        return 0, 0
    return values.get('Rss', 0), values.get('Pss', 0)


class PeakMemory(threading.Thread):
    """Samples, every `interval` seconds until stopped, the resident memory of groups of process trees: each
    group is a function of the process table that returns its root pids (an ansible-playbook run, the module
    processes on a node), and its size the sum over the roots and their descendants. stop() returns each
    group's peaks: summed PSS (what the tree takes) and summed RSS (pages shared between its processes counted
    once per process), and the most processes seen at once."""

    def __init__(self, groups: dict, interval: float = MEMORY_POLL_SECONDS):
        super().__init__(name='bench-memory', daemon=True)
        self._groups = groups
        self._interval = interval
        self._stopping = threading.Event()
        self.peaks = dict((name, dict(pss=0, rss=0, processes=0)) for name in groups)
        self.samples = 0

    def run(self) -> None:
        while True:
            self.sample()
            if self._stopping.wait(self._interval):
                self.sample()
                return

    def sample(self) -> None:
        table = process_table()
        for name, roots in self._groups.items():
            tree = with_descendants(set(roots(table)), table)
            sizes = [resident_bytes(pid) for pid in tree]
            peak = self.peaks[name]
            peak['rss'] = max(peak['rss'], sum(rss for rss, dummy in sizes))
            peak['pss'] = max(peak['pss'], sum(pss for dummy, pss in sizes))
            peak['processes'] = max(peak['processes'], len([rss for rss, dummy in sizes if rss]))
        self.samples += 1

    def stop(self) -> dict:
        """Stop sampling; the peaks by group, in MB (10^6 bytes)."""
        self._stopping.set()
        self.join()
        return dict((name, dict(peak_pss_mb=round(peak['pss'] / 1e6, 1), peak_rss_mb=round(peak['rss'] / 1e6, 1), processes=peak['processes']))
                    for name, peak in self.peaks.items())


def argv_roots(predicate) -> Callable:
    """A PeakMemory group: the processes whose argv satisfies predicate."""
    return lambda table: [pid for pid, (dummy, argv) in table.items() if argv and predicate(argv)]
