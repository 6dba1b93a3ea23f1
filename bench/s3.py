"""Part s3: a node's part streamed into an S3-compatible store (tests/harness/s3server: moto on loopback, reached
through its relay, as the code under test reaches it), against boto3's own upload_file.

- s3.upload: the finished archive written into the repository's part writer (module_utils/repository_s3: parts of
  a multipart upload, each sent with its SHA-256, two in flight), as the snapshot module streams it, vs boto3
  `upload_file` of the same file with boto3's defaults; both in this process, on every core.
- s3.overlap: the snapshot module (state=archived) archiving a btrfs snapshot straight into the store vs the same
  module archiving into a file followed by boto3 `upload_file` of it: streaming overlaps the two steps, so its
  time should be well under their sum. Also the module's peak memory while it streams.
"""

from __future__ import annotations

import configparser
import contextlib
import os
from pathlib import Path

import boto3
from botocore.config import Config

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository import open_repository
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import new_set_id, node_part_path
from ansible_collections.bigchaindb.rethinkdb.tests.harness.loopfs import loop_filesystem
from ansible_collections.bigchaindb.rethinkdb.tests.harness.s3server import S3Store

from bench.archive import write_part
from bench.datasets import scaled_data_dir
from bench.procs import BenchError, ModuleRunner, PeakMemory, run
from bench.timing import Contender, Sample, alternate, summary, throughput_figure, time_ratio_figure, timed, value_figure

UPLOAD_LIMIT = 0.8
# "Well under their sum": the streamed archive takes at most this share of archive-then-upload.
OVERLAP_LIMIT = 0.8
MEMORY_LIMIT_MB = 200
CLUSTER = 'bench'
SERVER = 'node1'
CHUNK = 1 << 20


def plain_client(store: S3Store):
    """A boto3 S3 client with boto3's defaults, reaching the store where the collection does (its relay)."""
    credentials = configparser.ConfigParser()
    credentials.read(store.credentials_file)
    profile = credentials[store.profile]
    return boto3.client('s3', endpoint_url=store.endpoint_url, region_name=store.region, config=Config(s3={'addressing_style': 'path'}),
                        aws_access_key_id=profile['aws_access_key_id'], aws_secret_access_key=profile['aws_secret_access_key'])


class S3Contenders:
    """Uploads and archives into one bucket: by the collection's code and by boto3's upload_file."""

    def __init__(self, store: S3Store, bucket: str, archive_path: Path, data_dir: Path, work: Path, modules: ModuleRunner):
        self.store = store
        self.bucket = bucket
        self.url = 's3://%s/bench' % bucket
        self.options = dict(endpoint_url=store.endpoint_url, region=store.region, credentials_file=str(store.credentials_file))
        self.repository = open_repository(self.url, self.options)
        self.client = plain_client(store)
        self.archive_path = archive_path
        self.size = archive_path.stat().st_size
        self.data_dir = data_dir
        self.files = work / 'archived'
        self.files.mkdir(parents=True)
        self.modules = modules
        self.set_ids: dict = {}

    def begin(self, name: str, rep: int) -> str:
        set_id = self.set_ids[(name, rep)] = new_set_id('snapshot')
        self.repository.begin(CLUSTER, set_id, dict(bench=name, rep=rep))
        return set_id

    def key(self, name: str, rep: int) -> str:
        return 'bench/plain/%s-%d/data.tar.zst' % (name, rep)

    def delete(self, name: str):
        """Cleanup of a contender: its objects (the set it wrote, or the plain upload) and files."""
        def remove(rep: int) -> None:
            set_id = self.set_ids.pop((name, rep), None)
            prefix = 'bench/%s/%s/' % (CLUSTER, set_id) if set_id else self.key(name, rep)
            for page in self.client.get_paginator('list_objects_v2').paginate(Bucket=self.bucket, Prefix=prefix):
                for entry in page.get('Contents', []):
                    self.client.delete_object(Bucket=self.bucket, Key=entry['Key'])
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.files / ('%s-%d.tar.zst' % (name, rep)))
        return remove

    def part_writer(self, rep: int) -> Sample:
        set_id = self.begin('writer', rep)

        def upload() -> dict:
            with open(self.archive_path, 'rb') as source:
                with self.repository.part_writer(CLUSTER, set_id, node_part_path(SERVER), size_hint=self.size) as writer:
                    for chunk in iter(lambda: source.read(CHUNK), b''):
                        writer.stream.write(chunk)
                    stored = writer.finish()
            if stored['bytes'] != self.size:
                raise BenchError('the part writer stored %d bytes of %d' % (stored['bytes'], self.size))
            return dict(store_checksum=stored['store_checksum'])
        return timed(upload)

    def upload_file(self, rep: int) -> Sample:
        return timed(lambda: self.client.upload_file(str(self.archive_path), self.bucket, self.key('upload_file', rep)))

    def _snapshot(self, set_id: str, state: str, **args) -> dict:
        return self.modules.call('snapshot', dict(state=state, data_dir=str(self.data_dir), set_id=set_id, **args))

    def _archived(self, set_id: str, **args) -> Sample:
        """The snapshot module, state=archived, timed whole with its peak memory; present before and absent after
        are not timed."""
        self._snapshot(set_id, 'present', backend='btrfs')
        try:
            process_ids: list = []
            sampler = PeakMemory(dict(module=lambda table: process_ids[:1]))
            sampler.start()

            def archived() -> dict:
                process = self.modules.start('snapshot', dict(state='archived', data_dir=str(self.data_dir), set_id=set_id, server=SERVER,
                                                              **args))
                process_ids.append(process.pid)
                result = ModuleRunner.finish('snapshot', process)
                return dict(part_bytes=result['part']['bytes'], raw_bytes=result['part']['raw_bytes'], module_seconds=result['seconds'])
            try:
                sample = timed(archived)
            finally:
                sample_memory = sampler.stop()
            sample.details['memory'] = sample_memory
            return sample
        finally:
            self._snapshot(set_id, 'absent')

    def streamed(self, rep: int) -> Sample:
        set_id = self.begin('streamed', rep)
        return self._archived(set_id, repository=self.url, cluster=CLUSTER, s3_endpoint_url=self.store.endpoint_url,
                              s3_region=self.store.region, s3_credentials_file=str(self.store.credentials_file))

    def then_upload(self, rep: int) -> Sample:
        dest = self.files / ('then_upload-%d.tar.zst' % rep)
        archived = self._archived(new_set_id('snapshot'), dest=str(dest))
        upload = timed(lambda: self.client.upload_file(str(dest), self.bucket, self.key('then_upload', rep)))
        return Sample(archived.seconds + upload.seconds, dict(archived.details, archive_seconds=archived.seconds, upload_seconds=upload.seconds),
                      archived.cpu_seconds + upload.cpu_seconds)


def measure_s3(work: Path, dataset: dict, data_mib: int, reps: int, modules: ModuleRunner, say=print) -> list:
    """s3.upload and s3.overlap on a data directory of data_mib MiB (the node data set scaled up) in a btrfs
    subvolume on a loop device, the store moto on loopback behind its relay."""
    work.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        mountpoint = stack.enter_context(loop_filesystem(work / 's3-btrfs', 'btrfs', data_mib + 1024))
        run(['btrfs', 'subvolume', 'create', mountpoint / 'rethinkdb'])
        data = scaled_data_dir([Path(dataset['path'])], mountpoint / 'rethinkdb' / 'default', data_mib << 20)
        say('   s3 data directory: %d files, %.0f MB' % (data['files'], data['bytes'] / 1e6))
        archive_dir = work / 's3-part'
        archive_dir.mkdir()
        part = write_part(data['path'], archive_dir / 'data.tar.zst')
        store = stack.enter_context(S3Store(work / 's3-store'))
        bucket = store.create_bucket()
        ways = S3Contenders(store, bucket, archive_dir / 'data.tar.zst', Path(data['path']), work / 's3', modules)
        uploads = alternate([Contender('writer', 'repository part writer (S3PartWriter)', ways.part_writer, ways.delete('writer')),
                             Contender('upload_file', 'boto3 upload_file', ways.upload_file, ways.delete('upload_file'))],
                            reps, before_each=os.sync, progress=say)
        archives = alternate([Contender('streamed', 'snapshot module, archived into S3', ways.streamed, ways.delete('streamed')),
                              Contender('then_upload', 'snapshot module into a file, then upload_file', ways.then_upload,
                                        ways.delete('then_upload'))], reps, before_each=os.sync, progress=say)
    common = dict(store='moto (tests/harness/s3server) on loopback, through its relay', part_bytes=part['bytes'], data_bytes=data['bytes'],
                  cores=os.cpu_count(), boto3_transfer='upload_file defaults: 8 MiB parts, 10 threads')
    then_upload = archives['then_upload']
    memory = [sample.details['memory']['module']['peak_pss_mb'] for sample in archives['streamed']]
    return [
        throughput_figure('s3.upload', 'a finished %.0f MB part into S3: the repository\'s part writer vs boto3 upload_file'
                          % (part['bytes'] / 1e6), ('S3PartWriter, as the snapshot module streams a part', uploads['writer']),
                          ('boto3 upload_file', uploads['upload_file']), part['bytes'], UPLOAD_LIMIT, **common),
        time_ratio_figure('s3.overlap', 'snapshot module archiving %.0f MB straight into S3 vs archiving into a file, then upload_file'
                          % (data['bytes'] / 1e6), ('snapshot module, state=archived into S3', archives['streamed']),
                          ('snapshot module into a file; boto3 upload_file', then_upload), OVERLAP_LIMIT,
                          archive_to_file_seconds=summary([sample.details['archive_seconds'] for sample in then_upload]),
                          upload_file_seconds=summary([sample.details['upload_seconds'] for sample in then_upload]), **common),
        value_figure('s3.module_memory', 'peak memory of the snapshot module archiving %.0f MB straight into S3 (PSS)' % (data['bytes'] / 1e6),
                     memory, 'MB', MEMORY_LIMIT_MB,
                     summed_rss_mb=summary([sample.details['memory']['module']['peak_rss_mb'] for sample in archives['streamed']], 1),
                     into_a_file_pss_mb=summary([sample.details['memory']['module']['peak_pss_mb'] for sample in then_upload], 1), **common),
    ]
