"""`python -m bench.run` (`make bench`): measure every figure, write the JSON results, print the table.

Parts: dump (the dump module and role against rethinkdb dump), archive and unpack (a node's data directory into and
out of a part), snapshot (btrfs skew and take time), fsfreeze (the freeze-and-copy backend), native (the native dump
and restore engine at 100,000 and 1,000,000 documents), chain (the chain check), continuous (the follower's lag,
its catch-up and incremental backups), transfer (a part crossing SSH with become, on the SSH lab), s3 (a part
streamed into S3), role (the backup role on 3 lab nodes per GB of data). A part that cannot
run here (not root, a tool missing) is skipped with its reason; a part that fails is recorded and the others
still run. Missed targets are figures like any other: the exit status is 1 only when a part failed.
Everything a run makes lives in one temporary work directory, removed at the end; clusters are stopped and
loop devices detached whatever happens, on SIGTERM too.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

from ansible_collections.bigchaindb.rethinkdb.tests.harness import loopfs, s3server, sshlab
from ansible_collections.bigchaindb.rethinkdb.tests.harness.cluster import Cluster

from bench import archive, chain, continuous, datasets, dump, machine, native, report, s3, snapshot, transport
from bench.procs import REPO, ModuleRunner

PARTS = ('dump', 'archive', 'unpack', 'snapshot', 'fsfreeze', 'native', 'chain', 'continuous', 'transfer', 's3', 'role')
# Parts that run on the dump cluster's data or on the node data set scaled up from it.
NEEDS_LOADED_CLUSTER = ('dump', 'archive', 'unpack', 'fsfreeze', 'chain', 's3', 'role')
NEEDS_DATASET = ('archive', 'unpack', 'fsfreeze', 's3', 'role')


def parse_arguments(argv: list | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m bench.run', description=__doc__.split('\n', 1)[0])
    parser.add_argument('--parts', default=','.join(PARTS), help='comma-separated parts to run (default: all of %(default)s)')
    parser.add_argument('--documents', type=int, default=100000,
                        help='documents in the dumped tables, bigchain.bigchain and bigchain.votes (default %(default)s)')
    parser.add_argument('--dump-reps', type=int, default=3, help='repetitions of the dump comparison (default %(default)s)')
    parser.add_argument('--reps', type=int, default=5, help='repetitions of the archive and unpack comparisons (default %(default)s)')
    parser.add_argument('--freeze-reps', type=int, default=9,
                        help='repetitions of the fsfreeze comparison, quick ones whose odd slow copy needs more of them (default %(default)s)')
    parser.add_argument('--dataset-mib', type=int, default=512, help='size of the node data directory for parts archive, unpack '
                        'and fsfreeze, in MiB (default %(default)s)')
    parser.add_argument('--chain-reps', type=int, default=3, help='repetitions of the chain check comparison (default %(default)s)')
    parser.add_argument('--chain-larger-documents', type=int, default=300000,
                        help="documents of the generated archive on which the chain check's peak memory is also measured; 0 for none (default %(default)s)")
    parser.add_argument('--snapshot-role-runs', type=int, default=3, help='backup role runs with btrfs snapshots (default %(default)s)')
    parser.add_argument('--snapshot-direct-runs', type=int, default=5,
                        help='snapshot module runs on all nodes at once (default %(default)s)')
    parser.add_argument('--snapshot-blocks', type=int, default=1000, help='blocks loaded into the btrfs cluster (default %(default)s)')
    parser.add_argument('--no-writer', action='store_true', help='take the btrfs snapshots without a writer inserting meanwhile')
    parser.add_argument('--native-documents', default='100000,1000000',
                        help='sizes of the native engine comparison, documents of bigchain.bigchain and bigchain.votes (default %(default)s)')
    parser.add_argument('--native-reps', default='3,1', help='repetitions at each of those sizes (default %(default)s)')
    parser.add_argument('--native-shards', type=int, default=3, help='shards of the native comparison tables (default %(default)s)')
    parser.add_argument('--native-replicas', type=int, default=1, help='replicas of the native comparison tables (default %(default)s)')
    parser.add_argument('--transfer-part-mib', type=int, default=2048, help='size of the part the transfer part fetches over SSH, in MiB '
                        '(default %(default)s)')
    parser.add_argument('--transfer-reps', type=int, default=3, help='repetitions of the transfer comparison (default %(default)s)')
    parser.add_argument('--s3-data-mib', type=int, default=1024, help='size of the data directory the s3 part archives, in MiB (default %(default)s)')
    parser.add_argument('--s3-reps', type=int, default=3, help='repetitions of the s3 comparisons (default %(default)s)')
    parser.add_argument('--role-sizes-gb', default='0.5,2', help='data per node of the backup role runs on 3 lab nodes, in GB (10^9 bytes; '
                        'default %(default)s; issue 10 asks for 0.5,2,8, which needs 3 x 9 GB of disk and the better part of an hour more)')
    parser.add_argument('--role-reps', type=int, default=2, help='backup role runs at each size (default %(default)s)')
    parser.add_argument('--continuous-documents', type=int, default=20000,
                        help='part continuous: documents in bigchain.bigchain and bigchain.votes of its cluster (default %(default)s)')
    parser.add_argument('--continuous-rates', default='200,2000',
                        help="part continuous: write rates of the follower's lag figures, documents/s (default %(default)s)")
    parser.add_argument('--continuous-rate-seconds', type=float, default=20,
                        help='part continuous: seconds of writing at each rate (default %(default)s)')
    parser.add_argument('--continuous-seal-seconds', type=float, default=1, help="part continuous: the follower's seal_seconds (default %(default)s)")
    parser.add_argument('--continuous-outage-seconds', type=float, default=60,
                        help='part continuous: the outage the catch-up closes, in seconds (default %(default)s)')
    parser.add_argument('--continuous-reps', type=int, default=3, help='part continuous: repetitions of its comparisons (default %(default)s)')
    parser.add_argument('--continuous-day-segments', type=int, default=8640,
                        help='part continuous: segments in a day, for the listing figure (default %(default)s)')
    parser.add_argument('--work-dir', help='directory for the temporary work directory (default: the system temporary directory)')
    parser.add_argument('--results-dir', default=str(REPO / 'bench' / 'results'), help='where results go (default bench/results)')
    arguments = parser.parse_args(argv)
    arguments.parts = [part.strip() for part in arguments.parts.split(',') if part.strip()]
    arguments.continuous_rates = [int(rate) for rate in arguments.continuous_rates.split(',') if rate.strip()]
    unknown = sorted(set(arguments.parts) - set(PARTS))
    if unknown:
        parser.error('unknown parts: %s (choose among %s)' % (', '.join(unknown), ', '.join(PARTS)))
    if min(arguments.reps, arguments.dump_reps, arguments.freeze_reps, arguments.chain_reps, arguments.documents, arguments.dataset_mib,
           arguments.transfer_part_mib, arguments.transfer_reps, arguments.s3_data_mib, arguments.s3_reps, arguments.role_reps) < 1:
        parser.error('--reps, --dump-reps, --freeze-reps, --chain-reps, --documents, --dataset-mib, --transfer-part-mib, --transfer-reps, '
                     '--s3-data-mib, --s3-reps and --role-reps must be at least 1')
    if arguments.chain_larger_documents < 0:
        parser.error('--chain-larger-documents must be 0 or more')
    try:
        arguments.native_documents = [int(size) for size in arguments.native_documents.split(',')]
        arguments.native_reps = [int(reps) for reps in arguments.native_reps.split(',')]
    except ValueError:
        parser.error('--native-documents and --native-reps are comma-separated numbers')
    if len(arguments.native_reps) != len(arguments.native_documents) or min(arguments.native_documents + arguments.native_reps) < 1:
        parser.error('--native-reps needs one number (at least 1) for each size of --native-documents')
    try:
        arguments.role_sizes_gb = sorted({float(size) for size in arguments.role_sizes_gb.split(',')})
    except ValueError:
        parser.error('--role-sizes-gb is comma-separated numbers')
    if min(arguments.role_sizes_gb) <= 0:
        parser.error('--role-sizes-gb are sizes above 0')
    return arguments


def _load_average() -> list:
    """The 1, 5 and 15 minute load averages: how much else the machine ran meanwhile."""
    return [round(load, 2) for load in os.getloadavg()]


def say(text: str) -> None:
    print(text, flush=True)


def _stop_on_sigterm(signal_number, frame) -> None:
    """Turn SIGTERM into SystemExit, so that every with-block stops its servers and detaches its loop device."""
    raise SystemExit(128 + signal_number)


class Run:
    """One benchmark run: its work directory, its results, and the parts it runs."""

    def __init__(self, arguments: argparse.Namespace):
        self.arguments = arguments
        self.started = time.perf_counter()
        self.work = Path(tempfile.mkdtemp(prefix='bigchaindb-rethinkdb-bench-', dir=arguments.work_dir))
        self.modules = ModuleRunner(self.work)
        self.results = dict(
            started_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            machine=dict(machine.machine_facts(), load_average_start=_load_average()),
            server=None,
            parameters=dict(parts=arguments.parts, documents=arguments.documents,
                            blocks=datasets.blocks_for_dumped_documents(arguments.documents), dumped_tables=list(dump.TABLES),
                            dump_reps=arguments.dump_reps, reps=arguments.reps, freeze_reps=arguments.freeze_reps, dataset_mib=arguments.dataset_mib,
                            chain_reps=arguments.chain_reps, chain_larger_documents=arguments.chain_larger_documents,
                            snapshot_role_runs=arguments.snapshot_role_runs, snapshot_direct_runs=arguments.snapshot_direct_runs,
                            snapshot_blocks=arguments.snapshot_blocks,
                            snapshot_writer=not arguments.no_writer, rethinkdb_bin=bool(os.environ.get('RETHINKDB_BIN')),
                            native_documents=arguments.native_documents, native_reps=arguments.native_reps,
                            native_shards=arguments.native_shards, native_replicas=arguments.native_replicas,
                            transfer_part_mib=arguments.transfer_part_mib, transfer_reps=arguments.transfer_reps,
                            s3_data_mib=arguments.s3_data_mib, s3_reps=arguments.s3_reps, role_sizes_gb=arguments.role_sizes_gb,
                            role_reps=arguments.role_reps,
                            continuous=dict(documents=arguments.continuous_documents, rates=arguments.continuous_rates,
                                            rate_seconds=arguments.continuous_rate_seconds, seal_seconds=arguments.continuous_seal_seconds,
                                            outage_seconds=arguments.continuous_outage_seconds, reps=arguments.continuous_reps,
                                            day_segments=arguments.continuous_day_segments)),
            datasets={},
            parts={},
            figures=[],
            skipped=[],
            errors=[],
        )

    def wanted(self, part: str) -> bool:
        return part in self.arguments.parts

    def skip(self, part: str, reason: str) -> None:
        say('== %s: skipped, %s' % (part, reason))
        self.results['skipped'].append(dict(part=part, reason=reason))

    def part(self, name: str, measure) -> None:
        """Run one part and keep its figures; a failure is recorded and the next part runs."""
        say('== %s (%.0f s into the run)' % (name, time.perf_counter() - self.started))
        record = self.results['parts'][name] = dict(load_average_start=_load_average())
        started = time.perf_counter()
        cpu_before = machine.cpu_times()
        try:
            self.results['figures'].extend(measure())
        except Exception as exc:  # recorded with its traceback; the run goes on and exits 1
            say('== %s failed: %s' % (name, exc))
            self.results['errors'].append(dict(part=name, error=str(exc), traceback=traceback.format_exc()))
        record.update(seconds=round(time.perf_counter() - started, 1), load_average_end=_load_average(),
                      cpus=machine.machine_usage(cpu_before, machine.cpu_times()))

    def unavailable(self, part: str) -> str | None:
        """Why a part cannot run on this machine, or None."""
        if part == 'snapshot':
            return loopfs.unavailable('btrfs')
        if part == 'fsfreeze':
            return loopfs.unavailable('xfs')
        if part in ('transfer', 'role'):
            return sshlab.unavailable('btrfs')
        if part == 's3':
            return s3server.unavailable() or loopfs.unavailable('btrfs')
        missing = [tool for tool in ('tar', 'zstd', 'sync') if part in NEEDS_DATASET and shutil.which(tool) is None]
        return 'needs %s, not installed' % ', '.join(missing) if missing else None

    def runnable(self) -> list:
        runnable = []
        for part in self.arguments.parts:
            reason = self.unavailable(part)
            if reason:
                self.skip(part, reason)
            else:
                runnable.append(part)
        return runnable

    def loaded_cluster_parts(self, parts: list) -> dict | None:
        """Start the dump cluster, load it, run the dump part, and build the node data set from its files."""
        blocks = self.results['parameters']['blocks']
        say('== loading %d blocks of BigchainDB data into a 3-node cluster' % blocks)
        cluster_root = self.work / 'dump-cluster'
        with Cluster(cluster_root, size=3) as cluster:
            self.results['server'] = machine.server_facts(cluster)
            loaded = datasets.load_cluster(cluster, blocks)
            self.results['datasets']['dump_cluster'] = loaded
            say('   loaded %s in %.0f s' % (loaded['documents'], loaded['seconds']))
            if 'dump' in parts:
                self.part('dump', lambda: dump.measure(cluster, self.work / 'dump', self.arguments.dump_reps, loaded))
            if 'chain' in parts:
                self.part('chain', lambda: chain.measure(cluster, self.work / 'chain', self.arguments.chain_reps, loaded,
                                                         self.arguments.chain_larger_documents))
        if not any(part in NEEDS_DATASET for part in parts):
            return None
        dataset = datasets.scaled_data_dir(datasets.server_data_dirs(cluster), self.work / 'dataset' / 'node',
                                           self.arguments.dataset_mib << 20)
        dataset['source'] = ("the dump cluster's own data files (%s, BigchainDB documents): the first node's small files once, "
                             'every table file repeated under new names' % self.results['server']['kind'])
        shutil.rmtree(cluster_root / 'data')
        self.results['datasets']['node_data_dir'] = dict((key, value) for key, value in dataset.items() if key != 'path')
        say('   node data set: %d files, %.0f MB' % (dataset['files'], dataset['bytes'] / 1e6))
        return dataset

    def execute(self) -> None:
        parts = self.runnable()
        if any(part in NEEDS_LOADED_CLUSTER for part in parts):
            dataset = self.loaded_cluster_parts(parts)
            if 'archive' in parts:
                self.part('archive', lambda: archive.measure_archive(dataset, self.work, self.arguments.reps))
            if 'unpack' in parts:
                self.part('unpack', lambda: archive.measure_unpack(dataset, self.work, self.arguments.reps, self.modules))
            if 'fsfreeze' in parts:
                self.part('fsfreeze', lambda: snapshot.measure_fsfreeze(dataset, self.work, self.arguments.freeze_reps, self.modules))
            if 's3' in parts:
                self.part('s3', lambda: s3.measure_s3(self.work / 's3-part', dataset, self.arguments.s3_data_mib, self.arguments.s3_reps,
                                                      self.modules, say))
            if 'role' in parts:
                self.part('role', lambda: transport.measure_role(self.work / 'role-part', dataset, self.arguments.role_sizes_gb,
                                                                 self.arguments.role_reps, say))
        if 'transfer' in parts:
            self.part('transfer', lambda: transport.measure_transfer(self.work / 'transfer-part', self.arguments.transfer_part_mib,
                                                                     self.arguments.transfer_reps, say))
        if 'continuous' in parts:
            self.part('continuous', lambda: continuous.measure(self.work / 'continuous', self.arguments))
        if 'native' in parts:
            arguments = self.arguments
            self.part('native', lambda: native.measure(self.work / 'native', arguments.native_documents,
                                                       dict(zip(arguments.native_documents, arguments.native_reps)),
                                                       arguments.native_shards, arguments.native_replicas, say))
        if 'snapshot' in parts:
            self.part('snapshot', lambda: snapshot.measure_btrfs(self.work, self.arguments.snapshot_role_runs, self.arguments.snapshot_direct_runs,
                                                                 self.arguments.snapshot_blocks, self.modules, not self.arguments.no_writer))

    def finish(self) -> Path:
        """Remove the work directory, complete and write the results."""
        try:
            shutil.rmtree(self.work)
        except OSError as exc:
            self.results['errors'].append(dict(part='clean-up', error='the work directory %s was not removed: %s' % (self.work, exc),
                                               traceback=traceback.format_exc()))
        self.results['machine']['load_average_end'] = _load_average()
        self.results['seconds'] = round(time.perf_counter() - self.started, 1)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')
        return report.write_results(self.results, Path(self.arguments.results_dir), stamp)


def main(argv: list | None = None) -> int:
    arguments = parse_arguments(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    bench_run = Run(arguments)
    say('bench: work directory %s' % bench_run.work)
    try:
        bench_run.execute()
    except Exception as exc:  # outside any part (the data set, a cluster's start): recorded, then the results are written
        bench_run.results['errors'].append(dict(part='setup', error=str(exc), traceback=traceback.format_exc()))
    except (KeyboardInterrupt, SystemExit) as exc:
        bench_run.results['errors'].append(dict(part='run', error='interrupted (%s)' % type(exc).__name__, traceback=''))
        raise
    finally:
        path = bench_run.finish()
    say('\n' + report.table(bench_run.results))
    say('\nresults: %s (and latest.json), %.0f s in all' % (os.path.relpath(path, Path.cwd()), bench_run.results['seconds']))
    for error in bench_run.results['errors']:
        sys.stderr.write('\n%s failed:\n%s' % (error['part'], error['traceback']))
    return 1 if bench_run.results['errors'] else 0


if __name__ == '__main__':
    sys.exit(main())
