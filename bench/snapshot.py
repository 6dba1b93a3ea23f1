"""Figures 5 and 6: btrfs snapshots of a 3-node cluster (cross-node skew of taken_at, time to take each), through
the real backup role and through the snapshot module run directly on every node at once; and the fsfreeze
backend's copy against `cp -a` of the same directory to the same target."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository_local import LocalRepository
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_catalog import read_manifest
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import new_set_id
from ansible_collections.bigchaindb.rethinkdb.tests.harness.cluster import Cluster
from ansible_collections.bigchaindb.rethinkdb.tests.harness.loopfs import loop_filesystem

from bench.datasets import Writer, load_cluster
from bench.dump import task_result
from bench.procs import Ansible, BenchError, ModuleRunner, run
from bench.timing import Contender, Sample, alternate, summary, throughput_figure, timed, value_figure

SKEW_LIMIT_MS = 20
TAKE_LIMIT_MS = 100
COPY_LIMIT = 0.8
BTRFS_MIB = 512
# How far ahead the shared instant is set for the direct runs: time for three interpreters to start (the role's
# backup_barrier_delay default is 3 seconds too).
DIRECT_LEAD_SECONDS = 3.0
TAKE_TASK = "Take every node's snapshot at the same instant"
COMMIT_TASK = 'Commit the set'
# The backup role's cluster name in the repository when the inventory names none: the group's name.
CLUSTER_NAME = 'rethinkdb'


def _skew_ms(taken_at: list) -> float:
    return (max(taken_at) - min(taken_at)) * 1000


class BtrfsRuns:
    """Snapshots of one cluster whose data directories are btrfs subvolumes: by the backup role, and by the
    snapshot module started on every node at once."""

    def __init__(self, cluster: Cluster, work: Path, modules: ModuleRunner):
        self.cluster = cluster
        self.modules = modules
        inventory = cluster.inventory()
        inventory['all']['children']['rethinkdb'].setdefault('vars', {}).update(
            rethinkdb_login_host=cluster.host, rethinkdb_backup_root=str(work / 'snapshot-backups'),
            rethinkdb_backup_node_dir=str(work / 'snapshot-node-dirs'))
        self.ansible = Ansible(work / 'snapshot-ansible', inventory)
        self.repository = LocalRepository(str(work / 'snapshot-backups'))

    def by_role(self) -> dict:
        """One backup role run (method snapshot, backend btrfs): each node's capture and the committed skew."""
        playbook_run = self.ansible.playbook('bigchaindb.rethinkdb.backup', '-e', 'method=snapshot', '-e', 'backend=btrfs')
        taken = [task_result(playbook_run, TAKE_TASK, node.name) for node in self.cluster.nodes]
        committed = task_result(playbook_run, COMMIT_TASK, self.cluster.nodes[0].name)
        manifest, problems = read_manifest(self.repository, CLUSTER_NAME, committed['set_id'])
        if manifest is None:
            raise BenchError('set %s was committed, but its manifest cannot be read: %s' % (committed['set_id'], '; '.join(problems)))
        self.settle()
        return dict(skew_ms=_skew_ms([result['taken_at'] for result in taken]), took_ms=[result['took_ms'] for result in taken],
                    late_ms=[result['late_ms'] for result in taken], manifest_skew_ms=manifest['snapshot']['skew_ms'],
                    seconds=playbook_run.seconds)

    def settle(self) -> None:
        """Wait until btrfs has cleaned up the deleted snapshots, whose clean-up would slow the next snapshot
        (runs here follow each other within seconds; backups, hours apart). A filesystem sync wakes the
        cleaner, which otherwise waits for the next periodic commit."""
        for node in self.cluster.nodes:
            run(['btrfs', 'filesystem', 'sync', node.data_dir.parent])
            run(['btrfs', 'subvolume', 'sync', node.data_dir.parent])

    def direct(self) -> dict:
        """The snapshot module (state=present) started on all nodes for one shared instant, then released."""
        set_id = new_set_id('snapshot')
        at = time.time() + DIRECT_LEAD_SECONDS
        started = [self.modules.start('snapshot', dict(state='present', backend='btrfs', data_dir=str(node.data_dir), set_id=set_id, at=at))
                   for node in self.cluster.nodes]
        taken = [ModuleRunner.finish('snapshot', process) for process in started]
        for node in self.cluster.nodes:
            self.modules.call('snapshot', dict(state='absent', data_dir=str(node.data_dir), set_id=set_id))
        self.settle()
        return dict(skew_ms=_skew_ms([result['taken_at'] for result in taken]), took_ms=[result['took_ms'] for result in taken],
                    late_ms=[result['late_ms'] for result in taken])


def _runs(action, count: int, label: str) -> list:
    outcomes = []
    for number in range(count):
        outcome = action()
        outcomes.append(outcome)
        print('  run %d/%d  %-30s skew %7.3f ms  took %s ms  late %s ms' % (
            number + 1, count, label, outcome['skew_ms'], ' '.join('%.1f' % took for took in outcome['took_ms']),
            ' '.join('%.1f' % late for late in outcome['late_ms'])), flush=True)
    return outcomes


def _figures(way: str, outcomes: list, **details) -> list:
    late = [late for outcome in outcomes for late in outcome['late_ms']]
    return [
        value_figure('snapshot.btrfs.skew.%s' % way, 'cross-node skew of taken_at, 3 nodes, btrfs, %s' % way,
                     [outcome['skew_ms'] for outcome in outcomes], 'ms', SKEW_LIMIT_MS, late_ms=summary(late), **details),
        value_figure('snapshot.btrfs.take.%s' % way, 'time to take one node\'s btrfs snapshot, %s' % way,
                     [took for outcome in outcomes for took in outcome['took_ms']], 'ms', TAKE_LIMIT_MS, **details),
    ]


def measure_btrfs(work: Path, role_runs: int, direct_runs: int, blocks: int, modules: ModuleRunner, writer: bool) -> list:
    """Figure 5 on a 3-node cluster whose data directories are btrfs subvolumes, each node's on a btrfs of its
    own (a loop device each, as separate machines would have: snapshots of one btrfs wait for each other's
    commit), loaded with `blocks` blocks (3 replicas, so every node holds data), a writer inserting throughout
    when asked."""
    with contextlib.ExitStack() as stack:
        data_dirs = {}
        for node_number in range(1, 4):
            name = 'node%d' % node_number
            mountpoint = stack.enter_context(loop_filesystem(work / ('btrfs-' + name) / 'btrfs-mnt', 'btrfs', BTRFS_MIB))
            run(['btrfs', 'subvolume', 'create', mountpoint / 'rethinkdb'])
            data_dirs[name] = mountpoint / 'rethinkdb'
        cluster = stack.enter_context(Cluster(work / 'snapshot-cluster', size=3, data_dirs=data_dirs))
        loaded = load_cluster(cluster, blocks, replicas=3)
        runs = BtrfsRuns(cluster, work, modules)
        background = Writer(cluster) if writer else None
        if background is not None:
            background.start()
        try:
            by_role = _runs(runs.by_role, role_runs, 'backup role, method snapshot')
            direct = _runs(runs.direct, direct_runs, 'snapshot module on 3 nodes')
        finally:
            written = background.stop() if background is not None else None
    common = dict(loaded=loaded, writer=written, filesystem='one btrfs per node, each on a loop device of %d MiB; data directory a subvolume'
                  % BTRFS_MIB)
    return (_figures('role', by_role, role_seconds=summary([outcome['seconds'] for outcome in by_role]),
                     manifest_skew_ms=[outcome['manifest_skew_ms'] for outcome in by_role], **common)
            + _figures('direct', direct, lead_seconds=DIRECT_LEAD_SECONDS, **common))


class FreezeContenders:
    """The fsfreeze backend's copy (the snapshot module, state=present) and `cp -a`, from one XFS data directory
    to the same target directory on another filesystem."""

    def __init__(self, data_dir: Path, target: Path, modules: ModuleRunner):
        self.data_dir = data_dir
        self.target = target
        self.modules = modules
        self.set_ids: dict = {}

    def module(self, rep: int) -> Sample:
        self.set_ids[rep] = new_set_id('snapshot')
        args = dict(state='present', backend='fsfreeze', data_dir=str(self.data_dir), set_id=self.set_ids[rep], staging_dir=str(self.target),
                    freeze_timeout=600)
        wall = timed(lambda: self.modules.call('snapshot', args))
        return Sample(wall.details['freeze_ms'] / 1000, dict(wall_seconds=wall.seconds, freeze_ms=wall.details['freeze_ms']), wall.cpu_seconds)

    def release(self, rep: int) -> None:
        self.modules.call('snapshot', dict(state='absent', data_dir=str(self.data_dir), set_id=self.set_ids[rep]))

    def copy(self, rep: int) -> Sample:
        def copy_tree() -> None:
            run(['cp', '-a', '--', self.data_dir, self.target / ('cp-%d' % rep)])
        return timed(copy_tree)

    def remove_copy(self, rep: int) -> None:
        shutil.rmtree(self.target / ('cp-%d' % rep))


def measure_fsfreeze(dataset: dict, work: Path, reps: int, modules: ModuleRunner) -> list:
    """Figure 6: the data set on an XFS loop device; the module's copy under freeze vs cp -a to the same target."""
    size_mib = (dataset['bytes'] >> 20) + 512
    with loop_filesystem(work / 'xfs-mnt', 'xfs', size_mib) as mountpoint:
        data_dir = mountpoint / 'node1'
        run(['cp', '-a', '--', dataset['path'], data_dir])
        target = work / 'fsfreeze-target'
        target.mkdir()
        # The first read of files just written to a loop-mounted XFS took many times longer than later ones
        # (5 s, then 0.3 s); one untimed copy keeps that out of the first repetition. Later copies, by either
        # contender, are still now and then ten times slower, all in system time: hence more repetitions.
        run(['cp', '-a', '--', data_dir, target / 'warm-up'])
        shutil.rmtree(target / 'warm-up')
        ways = FreezeContenders(data_dir, target, modules)
        samples = alternate([Contender('module', 'snapshot module, fsfreeze (freeze time)', ways.module, ways.release),
                             Contender('cp', 'cp -a', ways.copy, ways.remove_copy)], reps, before_each=os.sync)
    cp = ('cp -a DIR TARGET', samples['cp'])
    walls = [Sample(sample.details['wall_seconds'], cpu_seconds=sample.cpu_seconds) for sample in samples['module']]
    common = dict(source='XFS on a loop device', target='a directory on the filesystem of the work directory', files=dataset['files'])
    return [
        throughput_figure('fsfreeze.copy', 'fsfreeze backend copy, measured over the freeze (freeze, cp -a, thaw) vs cp -a',
                          ('snapshot module, fsfreeze, freeze_ms', samples['module']), cp, dataset['bytes'], COPY_LIMIT, **common),
        throughput_figure('fsfreeze.module_wall', 'snapshot module run whole (state=present, fsfreeze) vs cp -a',
                          ('snapshot module, fsfreeze, wall time', walls), cp, dataset['bytes'], **common),
    ]
