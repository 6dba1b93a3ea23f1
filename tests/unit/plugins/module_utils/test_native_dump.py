"""native_dump without a server: split points, the CRC-32 of parts, and archives put together from spooled ranges,
read back the way `rethinkdb restore` reads them (tarfile's gzip stream) and by dump_archive."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import os
import random
import tarfile
import zlib

import pytest
import zstandard

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import native_dump
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.dump_archive import prove_dump, table_documents
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.native_dump import (
    RangeResult,
    TablePlan,
    crc32_combine,
    split_points,
)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.streams import HashingWriter


@pytest.mark.parametrize('first, second', [(b'', b''), (b'abc', b''), (b'', b'xyz'), (b'a' * 1000, b'b' * 70000)])
def test_crc32_of_parts_combines_into_the_crc32_of_the_whole(first, second):
    assert crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second)) == zlib.crc32(first + second)


def test_crc32_combines_random_parts():
    generator = random.Random(7)
    for dummy in range(20):
        first, second = generator.randbytes(generator.randrange(5000)), generator.randbytes(generator.randrange(1, 5000))
        assert crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second)) == zlib.crc32(first + second)


def spread(keys: list, points: list) -> list:
    """How many of the keys each range between the points holds."""
    bounds = [keys[0]] + points + [keys[-1] + '~']
    return [sum(1 for key in keys if low <= key < high) for low, high in zip(bounds, bounds[1:])]


@pytest.mark.parametrize('make_key', [
    lambda generator: '%064x' % generator.getrandbits(256),
    lambda generator: str(uuid.UUID(int=generator.getrandbits(128), version=4)),
], ids=['sha3-hex', 'uuid4'])
def test_split_points_cut_hashes_and_uuids_evenly_from_the_keys_at_both_ends(make_key):
    generator = random.Random(7)
    keys = sorted(make_key(generator) for dummy in range(4000))
    points = split_points(keys[0], keys[-1], 8, tuple(keys[:32] + keys[-32:]))
    per_range = spread(keys, points)

    assert len(points) == 7 and points == sorted(points) and keys[0] < points[0] and points[-1] < keys[-1]
    assert sum(per_range) == len(keys) and min(per_range) > len(keys) / 8 * 0.8


def test_split_points_of_numbers_and_other_keys():
    assert split_points(0, 100, 4) == [25.0, 50.0, 75.0]
    assert all('abc' < point < 'abd' for point in split_points('abc', 'abd', 4, ('abc', 'abcz', 'abd')))
    assert split_points(['a', 1], ['b', 2], 4) == []
    assert split_points('é', 'ü', 4) == []
    assert split_points('a', 'b', 1) == [] and split_points(5, 5, 4) == []


def spooled(tmp_path, compression: str, index: int, documents: list) -> RangeResult:
    """A range's spool as a worker writes it: documents one a line, ',\\n' between them, one part."""
    path = tmp_path / ('range-%d' % index)
    with open(path, 'wb') as out:
        part = native_dump._Compressor(compression, 3, out)
        part.write(b',\n'.join(json.dumps(document, separators=(',', ':')).encode() for document in documents))
        part.close()
    return RangeResult(str(path), len(documents), part.raw_bytes, part.crc)


def archive_bytes(tmp_path, compression: str, tables: dict) -> bytes:
    """An archive of {name: [ranges of documents]} put together by the engine's writer."""
    sink = io.BytesIO()
    writer = native_dump._ArchiveWriter(HashingWriter(sink), compression, 3, 'rethinkdb_dump_2026-12-01T03:00:00')
    for number, (name, ranges) in enumerate(tables.items()):
        info = {'name': name, 'primary_key': 'id', 'indexes': [{'index': 'by_x', 'function': {'$reql_type$': 'BINARY', 'data': 'AAAA'}}],
                'write_hook': None}
        writer.info(TablePlan('db', name, info, [], []))
        writer.data(TablePlan('db', name, info, [], []), [spooled(tmp_path, compression, number * 100 + index, documents)
                                                          for index, documents in enumerate(ranges)])
    writer.end()
    return sink.getvalue()


TABLES = {
    'full': [[{'id': 'a%d' % n, 'x': [n, {'y': 'é\n'}]} for n in range(5)], [], [{'id': 'b%d' % n} for n in range(3)]],
    'empty': [[], []],
    'one': [[{'id': 1}]],
}


def test_a_gzip_archive_reads_as_one_member_in_the_tools_layout(tmp_path):
    data = archive_bytes(tmp_path, 'gzip', TABLES)

    with tarfile.open(fileobj=io.BytesIO(data), mode='r|gz') as archive:
        members = dict((member.name, archive.extractfile(member).read()) for member in archive)
    assert zlib.decompressobj(31).decompress(data) and zlib.decompress(data, 31)
    assert sorted(members) == sorted('rethinkdb_dump_2026-12-01T03:00:00/db/%s.%s' % (name, suffix) for name in TABLES for suffix in ('info', 'json'))
    top = 'rethinkdb_dump_2026-12-01T03:00:00/db/'
    assert json.loads(members[top + 'full.json']) == [document for documents in TABLES['full'] for document in documents]
    assert members[top + 'full.json'].startswith(b'[\n{"id":"a0"') and members[top + 'full.json'].endswith(b'{"id":"b2"}\n]\n')
    assert members[top + 'full.json'].count(b'\n') == 8 + 2
    assert members[top + 'empty.json'] == b'[\n]\n' and json.loads(members[top + 'one.json']) == [{'id': 1}]
    assert json.loads(members[top + 'full.info'])['indexes'][0]['index'] == 'by_x'
    assert len(zlib.decompress(data, 31)) % tarfile.RECORDSIZE == 0


@pytest.mark.parametrize('compression', ['gzip', 'zstd'])
def test_an_engine_archive_is_proved_and_read_back_table_by_table(tmp_path, compression):
    data = archive_bytes(tmp_path, compression, TABLES)

    proved = prove_dump(io.BytesIO(data), 'test archive')
    read_back = dict((name, [json.loads(line) for line in lines]) for name, lines in table_documents(io.BytesIO(data)))

    assert proved.compression == compression
    assert dict((name, table.documents) for name, table in proved.tables.items()) == {'db.empty': 0, 'db.full': 8, 'db.one': 1}
    assert read_back == dict(('db.%s' % name, [document for documents in ranges for document in documents]) for name, ranges in TABLES.items())
    if compression == 'zstd':
        assert data.startswith(b'\x28\xb5\x2f\xfd')
        assert zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read()[:512].startswith(b'rethinkdb_dump')


def test_the_sink_sees_only_writes_and_gets_the_sha256(tmp_path):
    class WriteOnly:
        def __init__(self):
            self.chunks = []

        def write(self, data):
            self.chunks.append(bytes(data))

    sink = WriteOnly()
    hashing = HashingWriter(sink)
    writer = native_dump._ArchiveWriter(hashing, 'gzip', 3, 'top')
    writer.end()

    assert hashing.bytes == sum(len(chunk) for chunk in sink.chunks)
    assert hashing.digest.hexdigest() == hashlib.sha256(b''.join(sink.chunks)).hexdigest()
    assert os.listdir(str(tmp_path)) == []
