"""Figures 3 and 4: a node's snapshot archive and its unpacking, against the raw tools on the same directory.

Archiving calls module_utils/archive.create as the snapshot module does (state=archived: its level, threads 0);
unpacking calls archive.extract as data_restore does (durable: every file fsynced), and runs the data_restore
module whole (state=staged: sha256 check, a pass for the unpacked size, the unpack) beside it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import archive
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.backup_set import new_set_id

from bench.procs import ModuleRunner, pipeline, run
from bench.timing import Contender, Sample, alternate, summary, throughput_figure, timed

LIMIT = 0.8
# The snapshot module's default: one zstd worker thread per CPU.
MODULE_THREADS = 0
LEVELS = sorted({1, archive.DEFAULT_LEVEL})


def _sync() -> None:
    """Flush what earlier runs wrote, so that their writeback does not slow the next run."""
    os.sync()


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


class ArchiveContenders:
    """Three ways to archive the node data directory at one zstd level into the same output directory."""

    def __init__(self, source: str, out: Path, level: int):
        self.source = source
        self.out = out
        self.level = level
        self.tools_label = 'tar -c DIR | zstd -%d' % level

    def dest(self, name: str, rep: int) -> Path:
        return self.out / ('%s-%d-%d.tar.zst' % (name, self.level, rep))

    def remove(self, name: str):
        return lambda rep: self.dest(name, rep).unlink()

    def module(self, rep: int) -> Sample:
        dest = self.dest('module', rep)
        return timed(lambda: dict(bytes=archive.create(self.source, str(dest), level=self.level, threads=MODULE_THREADS)['bytes']))

    def tools(self, rep: int, synced: bool = False) -> Sample:
        dest = self.dest('tools-synced' if synced else 'tools', rep)

        def compress() -> dict:
            pipeline(['tar', '-c', '-C', self.source, '.'], ['zstd', '-%d' % self.level, '-q', '-c'], dest)
            if synced:
                run(['sync', dest])
            return dict(bytes=dest.stat().st_size)
        return timed(compress)

    def contenders(self) -> list:
        return [
            Contender('module', 'archive.create level %d' % self.level, self.module, self.remove('module')),
            Contender('tools', self.tools_label, self.tools, self.remove('tools')),
            Contender('tools_synced', self.tools_label + '; sync', lambda rep: self.tools(rep, synced=True), self.remove('tools-synced')),
        ]


def measure_archive(dataset: dict, work: Path, reps: int) -> list:
    """Figure 3, at zstd level 1 and at the module's default level: archive.create vs tar -c | zstd -<level>
    (target), and beside it vs the same followed by a sync of the archive (archive.create fsyncs it)."""
    out = work / 'archives'
    out.mkdir()
    figures = []
    for level in LEVELS:
        ways = ArchiveContenders(dataset['path'], out, level)
        samples = alternate(ways.contenders(), reps, before_each=_sync)
        module = ('archive.create level %d, threads %d' % (level, MODULE_THREADS), samples['module'])
        compressed = [sample.details['bytes'] for sample in samples['module']]
        common = dict(files=dataset['files'], compression_ratio=round(dataset['bytes'] / compressed[0], 2),
                      archive_bytes=dict(module=summary(compressed, 0), tools=summary([sample.details['bytes'] for sample in samples['tools']], 0)))
        default = ', the module default' if level == archive.DEFAULT_LEVEL else ''
        figures.append(throughput_figure('archive.level%d' % level, 'snapshot archive of one node (archive.create, level %d%s) vs %s'
                                         % (level, default, ways.tools_label), module, (ways.tools_label, samples['tools']),
                                         dataset['bytes'], LIMIT, **common))
        figures.append(throughput_figure('archive.level%d_vs_synced' % level, 'archive.create level %d vs %s; sync (both on disk)'
                                         % (level, ways.tools_label), module, (ways.tools_label + '; sync', samples['tools_synced']),
                                         dataset['bytes'], **common))
    return figures


class UnpackContenders:
    """Four ways to unpack the same archive into a new directory of the same filesystem."""

    def __init__(self, archive_path: Path, sha256: str, work: Path, modules: ModuleRunner):
        self.archive_path = archive_path
        self.sha256 = sha256
        self.targets = work / 'unpacked'
        self.targets.mkdir()
        self.modules = modules

    def target(self, name: str, rep: int) -> Path:
        return self.targets / ('%s-%d' % (name, rep))

    def remove(self, name: str):
        return lambda rep: _remove(self.target(name, rep))

    def extract(self, rep: int) -> Sample:
        target = self.target('extract', rep)
        return timed(lambda: archive.extract(str(self.archive_path), str(target)))

    def data_restore(self, rep: int) -> Sample:
        parent = self.target('data_restore', rep)
        parent.mkdir()
        args = dict(state='staged', archive=str(self.archive_path), sha256=self.sha256, data_dir=str(parent / 'data'),
                    set_id=new_set_id('snapshot'))
        return timed(lambda: dict(raw_bytes=self.modules.call('data_restore', args).get('raw_bytes')))

    def tools(self, rep: int, synced: bool = False) -> Sample:
        target = self.target('tools-synced' if synced else 'tools', rep)
        target.mkdir()

        def unpack() -> None:
            pipeline(['zstd', '-d', '-q', '-c', self.archive_path], ['tar', '-x', '-C', target])
            if synced:
                run(['sync', '--file-system', target])
        return timed(unpack)

    def contenders(self) -> list:
        return [
            Contender('extract', 'archive.extract (durable)', self.extract, self.remove('extract')),
            Contender('tools', 'zstd -d | tar -x', self.tools, self.remove('tools')),
            Contender('data_restore', 'data_restore module, state=staged', self.data_restore, self.remove('data_restore')),
            Contender('tools_synced', 'zstd -d | tar -x; sync -f', lambda rep: self.tools(rep, synced=True), self.remove('tools-synced')),
        ]


def measure_unpack(dataset: dict, work: Path, reps: int, modules: ModuleRunner) -> list:
    """Figure 4: archive.extract vs zstd -d | tar -x (target), and beside it the data_restore module whole and
    the raw tools followed by a sync (the durability archive.extract gives)."""
    archive_dir = work / 'unpack-source'
    archive_dir.mkdir()
    archive_path = archive_dir / 'data.tar.zst'
    created = archive.create(dataset['path'], str(archive_path))
    ways = UnpackContenders(archive_path, created['sha256'], work, modules)
    samples = alternate(ways.contenders(), reps, before_each=_sync)
    tools = ('zstd -d | tar -x', samples['tools'])
    common = dict(archive_bytes=created['bytes'], level=archive.DEFAULT_LEVEL, files=dataset['files'])
    return [
        throughput_figure('unpack.extract', 'unpack one node archive (archive.extract, as data_restore calls it) vs zstd -d | tar -x',
                          ('archive.extract (every file fsynced)', samples['extract']), tools, dataset['bytes'], LIMIT, **common),
        throughput_figure('unpack.data_restore', 'data_restore module, state=staged (sha256, size pass, unpack) vs zstd -d | tar -x',
                          ('data_restore module, state=staged', samples['data_restore']), tools, dataset['bytes'], **common),
        throughput_figure('unpack.extract_vs_synced', 'archive.extract vs zstd -d | tar -x followed by sync -f (both durable)',
                          ('archive.extract (every file fsynced)', samples['extract']),
                          ('zstd -d | tar -x; sync -f', samples['tools_synced']), dataset['bytes'], **common),
    ]
