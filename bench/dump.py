"""Figures 1 and 2: the dump module, run directly and by ansible-playbook, and the backup role (method dump),
each against plain `python -m rethinkdb dump` of the same tables on the same cluster, all four in turns."""

from __future__ import annotations

import os
import re
import statistics
import sys
from pathlib import Path

from bench.procs import Ansible, BenchError, ModuleRunner, run
from bench.timing import Contender, Sample, alternate, seconds_of, summary, time_ratio_figure, timed

# The dump module's and the backup role's default tables.
TABLES = ('bigchain.bigchain', 'bigchain.votes')
LIMIT = 1.10
SUMMARY = re.compile(r'(\d+) rows? exported from (\d+) tables?')
PLAIN_LABEL = 'python -m rethinkdb dump'
ROLE_DUMP_TASK = 'Dump the tables into the set'


def task_result(playbook_run, task: str, host: str) -> dict:
    """One host's result of a task of a recorded run; BenchError if the task did not run there (renamed?)."""
    results = playbook_run.results(task)
    if host not in results:
        raise BenchError('the run recorded no result of task %r on %s (was the task renamed?)' % (task, host))
    return results[host]


class DumpContenders:
    """The four ways to dump the same tables into the same directory, each a Contender."""

    def __init__(self, cluster, work: Path):
        self.cluster = cluster
        self.node = cluster.nodes[0]
        self.host = cluster.host
        self.dumps = work / 'dumps'
        self.dumps.mkdir(parents=True)
        modules_dir = work / 'modules'
        modules_dir.mkdir()
        self.modules = ModuleRunner(modules_dir)
        inventory = cluster.inventory()
        inventory['all']['children']['rethinkdb'].setdefault('vars', {}).update(
            rethinkdb_login_host=cluster.host, rethinkdb_backup_root=str(work / 'backups'), rethinkdb_backup_node_dir=str(work / 'node-dirs'))
        self.ansible = Ansible(work / 'ansible', inventory)

    def dest(self, name: str, rep: int) -> Path:
        return self.dumps / ('%s-%d.tar.gz' % (name, rep))

    def remove(self, name: str):
        return lambda rep: self.dest(name, rep).unlink()

    def module_args(self, dest: Path) -> dict:
        return dict(login_host=self.host, login_port=self.node.driver_port, tables=list(TABLES), dest=str(dest))

    def plain(self, rep: int) -> Sample:
        dest = self.dest('plain', rep)
        argv = [sys.executable, '-m', 'rethinkdb', 'dump', '--host-name', self.host, '--driver-port', self.node.driver_port]
        for table in TABLES:
            argv += ['--export', table]
        argv += ['--file', dest]

        def dump() -> dict:
            counted = SUMMARY.search(run(argv).stdout)
            return dict(documents=int(counted.group(1)) if counted else None, bytes=dest.stat().st_size)
        return timed(dump)

    def direct(self, rep: int) -> Sample:
        dest = self.dest('direct', rep)

        def dump() -> dict:
            result = self.modules.call('dump', self.module_args(dest))
            return dict(documents=result['documents'], bytes=result['bytes'], module_seconds=result['seconds'])
        return timed(dump)

    def by_ansible(self, rep: int) -> Sample:
        dest = self.dest('ansible', rep)

        def dump() -> dict:
            result = task_result(self.ansible.one_task(self.node.name, 'bigchaindb.rethinkdb.dump', self.module_args(dest)),
                                 'module under test', self.node.name)
            return dict(documents=result['documents'], bytes=result['bytes'], module_seconds=result['seconds'])
        return timed(dump)

    def ansible_start(self, rep: int) -> Sample:
        """What any one-task ansible-playbook run costs: the same play running ansible.builtin.ping."""
        return timed(lambda: dict(ping=task_result(self.ansible.one_task(self.node.name, 'ansible.builtin.ping', {}),
                                                   'module under test', self.node.name)['ping']))

    def role(self, rep: int) -> Sample:
        def backup() -> dict:
            result = task_result(self.ansible.playbook('bigchaindb.rethinkdb.backup', '-e', 'method=dump'), ROLE_DUMP_TASK, self.node.name)
            return dict(documents=result['documents'], bytes=result['bytes'], module_seconds=result['seconds'])
        return timed(backup)

    def with_server_cpu(self, run_once):
        """run_once, its sample's CPU seconds counting the servers' too (they are not this process's children)."""
        def measured(rep: int) -> Sample:
            before = servers_cpu_seconds(self.cluster)
            sample = run_once(rep)
            sample.details['server_cpu_seconds'] = round(servers_cpu_seconds(self.cluster) - before, 3)
            sample.cpu_seconds += sample.details['server_cpu_seconds']
            return sample
        return measured

    def contenders(self) -> list:
        return [
            Contender('plain', PLAIN_LABEL, self.with_server_cpu(self.plain), self.remove('plain')),
            Contender('direct', 'dump module, run directly', self.with_server_cpu(self.direct), self.remove('direct')),
            Contender('ansible', 'dump module, one-task ansible-playbook', self.with_server_cpu(self.by_ansible), self.remove('ansible')),
            Contender('role', 'backup role (playbook, method dump)', self.with_server_cpu(self.role)),
            Contender('ping', 'one-task ansible-playbook of ansible.builtin.ping', self.ansible_start),
        ]


def servers_cpu_seconds(cluster) -> float:
    """CPU seconds the cluster's running servers have used so far (user and system, all their threads)."""
    ticks = os.sysconf('SC_CLK_TCK')
    total = 0.0
    for node in cluster.nodes:
        pid = node.pid()
        if pid is None:
            continue
        with open('/proc/%d/stat' % pid, encoding='ascii', errors='replace') as stat:
            fields = stat.read().rsplit(')', 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _details(samples: list, key: str) -> list:
    return [sample.details.get(key) for sample in samples]


def _check_same_documents(samples: dict) -> int:
    """Every dump held the same number of documents; that number."""
    counts = set(count for name, runs in samples.items() if name != 'ping' for count in _details(runs, 'documents'))
    if len(counts) != 1 or None in counts:
        raise BenchError('the dumps did not all hold the same number of documents: %s' % sorted(counts, key=str))
    return counts.pop()


def measure(cluster, work: Path, reps: int, loaded: dict) -> list:
    """Figures 1 (module direct and by Ansible, target <= LIMIT x plain) and 2 (the backup role and its overhead)."""
    ways = DumpContenders(cluster, work)
    samples = alternate(ways.contenders(), reps)
    documents = _check_same_documents(samples)
    plain = (PLAIN_LABEL, samples['plain'])
    common = dict(tables=list(TABLES), documents=documents, archive_bytes=summary(_details(samples['plain'], 'bytes'), 0),
                  cluster_documents=loaded['documents'], dump_host=cluster.nodes[0].name)
    role_seconds = seconds_of(samples['role'])
    ansible_start_seconds = statistics.median(seconds_of(samples['ping']))
    role_dump_seconds = _details(samples['role'], 'module_seconds')
    return [
        time_ratio_figure('dump.module_direct', 'dump module run directly (python -m <module> args.json) vs plain rethinkdb dump',
                          ('dump module, run directly', samples['direct']), plain, LIMIT,
                          module_reported_seconds=summary(_details(samples['direct'], 'module_seconds')), **common),
        time_ratio_figure('dump.module_ansible', 'dump module in a one-task ansible-playbook run vs plain rethinkdb dump',
                          ('dump module, one-task ansible-playbook', samples['ansible']), plain, LIMIT,
                          module_reported_seconds=summary(_details(samples['ansible'], 'module_seconds')),
                          ansible_start_seconds=summary(seconds_of(samples['ping'])),
                          ratio_after_ansible_start=round((statistics.median(seconds_of(samples['ansible'])) - ansible_start_seconds)
                                                          / statistics.median(seconds_of(samples['plain'])), 3),
                          **common),
        time_ratio_figure('backup_role.dump', 'backup role, whole playbook run (method dump) vs plain rethinkdb dump',
                          ('backup role (playbook, method dump)', samples['role']), plain,
                          overhead_over_plain_dump_seconds=round(statistics.median(role_seconds)
                                                                 - statistics.median(seconds_of(samples['plain'])), 3),
                          dump_task_seconds=summary(role_dump_seconds),
                          overhead_over_own_dump_task_seconds=summary([whole - dump for whole, dump in zip(role_seconds, role_dump_seconds)]),
                          **common),
    ]
