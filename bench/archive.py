"""Figures 3 and 4: a node's snapshot archive and its unpacking, against the raw tools on the same directory.

Archiving calls module_utils/archive.write_archive into the part writer the snapshot module writes a file
through (state=archived with dest: module_utils/repository.part_destination, hashed on its way, fsynced and
renamed), at its level with one zstd worker per core; the raw tools are `tar -c | zstd -T0`, every core too.
Unpacking calls archive.extract on the archive read as a stream, as data_restore does (sha256, file index and
zstd checksum checked in the pass that unpacks, every file fsynced), and runs the data_restore module whole
(state=staged, the archive handed over as a file) beside it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import archive
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import part_destination
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import new_run_id, new_set_id, node_part_path

from bench.procs import ModuleRunner, pipeline, run
from bench.timing import Contender, Sample, alternate, summary, throughput_figure, timed

LIMIT = 0.8
# data_restore state=staged (hash and unpack in one pass) against zstd -d | tar -x: issue 10's target.
STAGED_LIMIT = 0.9
# The snapshot module's default: one zstd worker thread per CPU; the raw tools get every core too (zstd -T0).
MODULE_THREADS = 0
LEVELS = sorted({1, archive.DEFAULT_LEVEL})
PART_PATH = node_part_path('node1')


def _sync() -> None:
    """Flush what earlier runs wrote, so that their writeback does not slow the next run."""
    os.sync()


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def write_part(source: str, dest: Path, level: int = archive.DEFAULT_LEVEL) -> dict:
    """Archive a directory into a part file as the snapshot module does with dest; the part as it records it
    (path, bytes, sha256, raw_bytes, files)."""
    with part_destination(dict(dest=str(dest)), PART_PATH, size_hint=None) as writer:
        facts = archive.write_archive(source, writer.stream, level=level, threads=MODULE_THREADS)
        stored = writer.finish()
    return dict(path=PART_PATH, bytes=stored['bytes'], sha256=stored['sha256'], raw_bytes=facts['raw_bytes'], files=facts['files'])


def tools_archive(source: str, dest: Path, level: int, synced: bool = False) -> None:
    """tar -c DIR | zstd -T0 -<level> > dest (every core), then a sync of dest if asked."""
    pipeline(['tar', '-c', '-C', source, '.'], ['zstd', '-T0', '-%d' % level, '-q', '-c'], dest)
    if synced:
        run(['sync', dest])


class ArchiveContenders:
    """Three ways to archive the node data directory at one zstd level into the same output directory."""

    def __init__(self, source: str, out: Path, level: int):
        self.source = source
        self.out = out
        self.level = level
        self.tools_label = 'tar -c DIR | zstd -T0 -%d' % level

    def dest(self, name: str, rep: int) -> Path:
        return self.out / ('%s-%d-%d.tar.zst' % (name, self.level, rep))

    def remove(self, name: str):
        return lambda rep: self.dest(name, rep).unlink()

    def module(self, rep: int) -> Sample:
        return timed(lambda: dict(bytes=write_part(self.source, self.dest('module', rep), self.level)['bytes']))

    def tools(self, rep: int, synced: bool = False) -> Sample:
        dest = self.dest('tools-synced' if synced else 'tools', rep)

        def compress() -> dict:
            tools_archive(self.source, dest, self.level, synced)
            return dict(bytes=dest.stat().st_size)
        return timed(compress)

    def contenders(self) -> list:
        return [
            Contender('module', 'write_archive level %d' % self.level, self.module, self.remove('module')),
            Contender('tools', self.tools_label, self.tools, self.remove('tools')),
            Contender('tools_synced', self.tools_label + '; sync', lambda rep: self.tools(rep, synced=True), self.remove('tools-synced')),
        ]


def measure_archive(dataset: dict, work: Path, reps: int) -> list:
    """Figure 3, at zstd level 1 and at the module's default level: write_archive into a part file vs
    tar -c | zstd -T0 -<level> (target), and beside it vs the same followed by a sync of the archive (the part
    writer fsyncs it)."""
    out = work / 'archives'
    out.mkdir()
    figures = []
    for level in LEVELS:
        ways = ArchiveContenders(dataset['path'], out, level)
        samples = alternate(ways.contenders(), reps, before_each=_sync)
        module = ('write_archive into a part file, level %d, threads %d (one per core)' % (level, MODULE_THREADS), samples['module'])
        compressed = [sample.details['bytes'] for sample in samples['module']]
        common = dict(files=dataset['files'], cores=os.cpu_count(), compression_ratio=round(dataset['bytes'] / compressed[0], 2),
                      archive_bytes=dict(module=summary(compressed, 0), tools=summary([sample.details['bytes'] for sample in samples['tools']], 0)))
        default = ', the module default' if level == archive.DEFAULT_LEVEL else ''
        figures.append(throughput_figure('archive.level%d' % level, 'snapshot archive of one node (write_archive, level %d%s) vs %s'
                                         % (level, default, ways.tools_label), module, (ways.tools_label, samples['tools']),
                                         dataset['bytes'], LIMIT, **common))
        figures.append(throughput_figure('archive.level%d_vs_synced' % level, 'write_archive level %d vs %s; sync (both on disk)'
                                         % (level, ways.tools_label), module, (ways.tools_label + '; sync', samples['tools_synced']),
                                         dataset['bytes'], **common))
    return figures


class UnpackContenders:
    """Four ways to unpack the same archive into a new directory of the same filesystem."""

    def __init__(self, archive_path: Path, part: dict, work: Path, modules: ModuleRunner):
        self.archive_path = archive_path
        self.part = part
        self.targets = work / 'unpacked'
        self.targets.mkdir()
        self.modules = modules

    def target(self, name: str, rep: int) -> Path:
        return self.targets / ('%s-%d' % (name, rep))

    def remove(self, name: str):
        return lambda rep: _remove(self.target(name, rep))

    def extract(self, rep: int) -> Sample:
        target = self.target('extract', rep)

        def unpack() -> dict:
            with open(self.archive_path, 'rb') as source:
                return archive.extract(source, str(target), sha256=self.part['sha256'], index=self.part['files'])
        return timed(unpack)

    def data_restore(self, rep: int) -> Sample:
        parent = self.target('data_restore', rep)
        parent.mkdir()
        args = dict(state='staged', data_dir=str(parent / 'data'), restore_id=new_run_id(), set_id=new_set_id('snapshot'),
                    part=self.part, archive=str(self.archive_path))
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
            Contender('extract', 'archive.extract (one pass, durable)', self.extract, self.remove('extract')),
            Contender('tools', 'zstd -d | tar -x', self.tools, self.remove('tools')),
            Contender('data_restore', 'data_restore module, state=staged', self.data_restore, self.remove('data_restore')),
            Contender('tools_synced', 'zstd -d | tar -x; sync -f', lambda rep: self.tools(rep, synced=True), self.remove('tools-synced')),
        ]


def measure_unpack(dataset: dict, work: Path, reps: int, modules: ModuleRunner) -> list:
    """Figure 4: archive.extract vs zstd -d | tar -x, and the data_restore module whole (state=staged: sha256,
    file index and unpack in one pass) vs the same (issue 10's target); beside them the raw tools followed by a
    sync (the durability archive.extract gives)."""
    archive_dir = work / 'unpack-source'
    archive_dir.mkdir()
    archive_path = archive_dir / 'data.tar.zst'
    part = write_part(dataset['path'], archive_path)
    ways = UnpackContenders(archive_path, part, work, modules)
    samples = alternate(ways.contenders(), reps, before_each=_sync)
    tools = ('zstd -d | tar -x', samples['tools'])
    common = dict(archive_bytes=part['bytes'], level=archive.DEFAULT_LEVEL, files=dataset['files'])
    return [
        throughput_figure('unpack.extract', 'unpack one node archive (archive.extract, as data_restore calls it) vs zstd -d | tar -x',
                          ('archive.extract (sha256, file index, every file fsynced)', samples['extract']), tools, dataset['bytes'], LIMIT,
                          **common),
        throughput_figure('unpack.data_restore', 'data_restore module, state=staged (hash and unpack in one pass) vs zstd -d | tar -x',
                          ('data_restore module, state=staged', samples['data_restore']), tools, dataset['bytes'], STAGED_LIMIT, **common),
        throughput_figure('unpack.extract_vs_synced', 'archive.extract vs zstd -d | tar -x followed by sync -f (both durable)',
                          ('archive.extract (every file fsynced)', samples['extract']),
                          ('zstd -d | tar -x; sync -f', samples['tools_synced']), dataset['bytes'], **common),
        throughput_figure('unpack.data_restore_vs_synced', 'data_restore module, state=staged vs zstd -d | tar -x; sync -f (both durable)',
                          ('data_restore module, state=staged', samples['data_restore']),
                          ('zstd -d | tar -x; sync -f', samples['tools_synced']), dataset['bytes'], **common),
    ]
