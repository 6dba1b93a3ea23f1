"""dump_archive: reading dump archives in one streaming pass.

The archive builders here write archives the way `rethinkdb dump` does; the module tests use them too.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import threading
import time

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import dump_archive
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.dump_archive import DumpArchiveError, read_dump_archive

TOP = 'rethinkdb_dump_2026-11-24T16:30:00'


def documents_json(documents: list) -> bytes:
    """A table's .json as the tool writes it: one document per line inside a JSON array."""
    if not documents:
        return b'[\n]\n'
    return ('[\n' + ',\n'.join(json.dumps(document) for document in documents) + '\n]\n').encode('utf-8')


def info_json(name: str, primary_key: str = 'id', indexes: tuple = ()) -> bytes:
    """A table's .info as the tool writes it: info() with index_status() rows and the write hook."""
    return json.dumps({
        'name': name, 'primary_key': primary_key, 'type': 'TABLE',
        'indexes': [{'index': index, 'ready': True, 'multi': False, 'geo': False, 'outdated': False,
                     'function': {'$reql_type$': 'BINARY', 'data': 'AAAA'}} for index in indexes],
        'write_hook': None,
    }).encode('utf-8') + b'\n'


def table_members(tables: dict) -> list:
    """(name, bytes) members for {'db.table': documents}, .info then .json as the tool adds them."""
    members = []
    for name, documents in tables.items():
        db, table = name.split('.')
        members.append(('%s/%s/%s.info' % (TOP, db, table), info_json(table, indexes=('block_and_voter',) if table == 'votes' else ())))
        members.append(('%s/%s/%s.json' % (TOP, db, table), documents_json(documents)))
    return members


def write_archive(path, members: list) -> str:
    """A tar.gz of members: (name, bytes) for regular files, or ready TarInfo objects (no data)."""
    with tarfile.open(str(path), 'w:gz') as archive:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                archive.addfile(member)
                continue
            name, data = member
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return str(path)


def sample_tables(blocks: int = 30, votes: int = 90) -> dict:
    return {
        'bigchain.bigchain': [{'id': 'b%04d' % n, 'block': {'timestamp': str(n), 'transactions': [{'id': 't%d' % n}]}} for n in range(blocks)],
        'bigchain.votes': [{'id': 'v%04d' % n, 'vote': {'voting_for_block': 'b%04d' % (n // 3), 'is_block_valid': True}} for n in range(votes)],
    }


def sha256_of(path) -> str:
    with open(str(path), 'rb') as stream:
        return hashlib.sha256(stream.read()).hexdigest()


# -- reading dump archives


def test_an_archive_gives_counts_keys_indexes_checksum_and_sizes(tmp_path):
    tables = dict(sample_tables(), **{'other.empty': []})
    path = write_archive(tmp_path / 'd.tar.gz', table_members(tables))

    archive = read_dump_archive(path, sha256=sha256_of(path).upper())

    assert list(archive.tables) == ['bigchain.bigchain', 'bigchain.votes', 'other.empty']
    assert archive.tables['bigchain.votes'].facts() == dict(documents=90, primary_key='id', indexes=['block_and_voter'])
    assert archive.tables['bigchain.bigchain'].documents == 30
    assert archive.tables['other.empty'].documents == 0
    assert (archive.sha256, archive.bytes, archive.top) == (sha256_of(path), os.path.getsize(path), TOP)
    assert archive.raw_bytes == sum(len(data) for name, data in table_members(tables))


def test_documents_are_counted_across_read_chunks_and_in_any_layout(tmp_path, monkeypatch):
    monkeypatch.setattr(dump_archive, 'CHUNK_BYTES', 64)
    documents = [{'id': n, 'text': 'x' * (n * 37 % 300), 'nested': {'list': [1, 2, {'deep': '] , ['}]}} for n in range(50)]
    pretty = json.dumps(documents, indent=2).encode('utf-8')
    members = [(TOP + '/db/pretty.info', info_json('pretty')), (TOP + '/db/pretty.json', pretty),
               (TOP + '/db/compact.info', info_json('compact')), (TOP + '/db/compact.json', json.dumps(documents).encode('utf-8'))]

    archive = read_dump_archive(write_archive(tmp_path / 'd.tar.gz', members))

    assert archive.tables['db.pretty'].documents == archive.tables['db.compact'].documents == 50


def test_directory_entries_of_the_layout_are_allowed(tmp_path):
    directories = []
    for name in (TOP, TOP + '/bigchain'):
        entry = tarfile.TarInfo(name)
        entry.type = tarfile.DIRTYPE
        directories.append(entry)
    path = write_archive(tmp_path / 'd.tar.gz', directories + table_members(sample_tables()))

    assert read_dump_archive(path).tables['bigchain.votes'].documents == 90


def special(name: str, kind: bytes, linkname: str = '') -> tarfile.TarInfo:
    entry = tarfile.TarInfo(name)
    entry.type = kind
    entry.linkname = linkname
    return entry


@pytest.mark.parametrize('extra, problem', [
    ((TOP + '/../../etc/cron.d/x.json', b'[]'), 'parent path component'),
    (('/' + TOP + '/bigchain/x.json', b'[]'), 'parent path component'),
    ((TOP + '/bigchain/sub/x.json', b'[]'), 'is not at <top>/<db>/<file>'),
    ((TOP + '/bigchain/x.csv', b'id\n1\n'), 'is not a <db>/<table>.json or .info name'),
    ((TOP + '/bigchain/x y.json', b'[]'), 'is not a <db>/<table>.json or .info name'),
    (('other_top/bigchain/x.json', b'[]'), 'second top directory'),
    (('.hidden/bigchain/x.json', b'[]'), 'unexpected top directory'),
    (special(TOP + '/bigchain/link.json', tarfile.SYMTYPE, '/etc/passwd'), 'is not a regular file'),
    (special(TOP + '/bigchain/hard.json', tarfile.LNKTYPE, TOP + '/bigchain/votes.json'), 'is not a regular file'),
    (special(TOP + '/bigchain/dev.json', tarfile.CHRTYPE), 'is not a regular file'),
    (special(TOP + '/bigchain/fifo.json', tarfile.FIFOTYPE), 'is not a regular file'),
    (special(TOP + '/bigchain/subdir', tarfile.DIRTYPE), 'is not a regular file'),
])
def test_unsafe_or_foreign_members_are_refused(tmp_path, extra, problem):
    path = write_archive(tmp_path / 'd.tar.gz', table_members(sample_tables()) + [extra])

    with pytest.raises(DumpArchiveError, match='is not a usable rethinkdb dump: member .*' + problem) as caught:
        read_dump_archive(path)
    assert '\n' not in str(caught.value)


@pytest.mark.parametrize('drop, problem', [
    (TOP + '/bigchain/votes.info', 'table bigchain.votes has data but no .info file'),
    (TOP + '/bigchain/votes.json', r'table bigchain.votes has a .info file but no data \(.json\)'),
])
def test_each_table_needs_its_data_and_its_info(tmp_path, drop, problem):
    members = [member for member in table_members(sample_tables()) if member[0] != drop]

    with pytest.raises(DumpArchiveError, match=problem):
        read_dump_archive(write_archive(tmp_path / 'd.tar.gz', members))


def test_a_member_twice_is_refused(tmp_path):
    members = table_members(sample_tables())
    path = write_archive(tmp_path / 'd.tar.gz', members + [members[-1]])

    with pytest.raises(DumpArchiveError, match='appears twice'):
        read_dump_archive(path)


def test_an_empty_archive_is_refused(tmp_path):
    with pytest.raises(DumpArchiveError, match='it holds no tables'):
        read_dump_archive(write_archive(tmp_path / 'd.tar.gz', []))


@pytest.mark.parametrize('data, problem', [
    (b'', "expected '\\['"),
    (b'{"id": 1}', "expected '\\['"),
    (b'[{"id": 1},\n{"id": 2}', "expected ',' or '\\]', found the end of the data"),
    (b'[{"id": 1}, {"id": ', 'not valid JSON'),
    (b'[{"id": 1},\n', 'ends before its JSON array is closed'),
    (b'[{"id": 1}, 2]', 'something other than a JSON object'),
    (b'[{"id": 1}]\n[{"id": 2}]', 'data after the end'),
    (b'[{"id": 1},]', 'something other than a JSON object'),
    (b'[{"id": "\xff"}]', 'truncated or corrupt'),
])
def test_table_data_must_be_a_json_array_of_objects(tmp_path, data, problem):
    members = [(TOP + '/db/t.info', info_json('t')), (TOP + '/db/t.json', data)]

    with pytest.raises(DumpArchiveError, match=problem):
        read_dump_archive(write_archive(tmp_path / 'd.tar.gz', members))


@pytest.mark.parametrize('info, problem', [
    (b'{"primary_key": 1}', 'does not describe a table'),
    (b'{"indexes": []}', 'does not describe a table'),
    (b'[]', 'does not describe a table'),
    (b'{"primary_key": "id", ', 'is not valid JSON'),
])
def test_table_descriptions_must_name_the_primary_key(tmp_path, info, problem):
    members = [(TOP + '/db/t.info', info), (TOP + '/db/t.json', b'[]')]

    with pytest.raises(DumpArchiveError, match=problem):
        read_dump_archive(write_archive(tmp_path / 'd.tar.gz', members))


def big_archive(tmp_path) -> str:
    """An archive large enough that cutting or flipping bytes lands inside compressed table data."""
    documents = [{'id': 'd%06d' % n, 'payload': hashlib.sha256(b'%d' % n).hexdigest() * 4} for n in range(3000)]
    return write_archive(tmp_path / 'd.tar.gz', table_members({'bigchain.votes': documents}))


def test_a_truncated_archive_is_refused_in_one_line(tmp_path):
    path = big_archive(tmp_path)
    with open(path, 'rb') as stream:
        whole = stream.read()
    for size in (len(whole) - 8, len(whole) // 2, 100, 5):
        with open(path, 'wb') as stream:
            stream.write(whole[:size])
        with pytest.raises(DumpArchiveError, match='is not a usable rethinkdb dump: it is truncated or corrupt') as caught:
            read_dump_archive(path)
        assert '\n' not in str(caught.value)


def test_a_corrupted_archive_is_refused(tmp_path):
    path = big_archive(tmp_path)
    with open(path, 'rb') as stream:
        whole = bytearray(stream.read())
    whole[len(whole) // 2] ^= 0xFF
    with open(path, 'wb') as stream:
        stream.write(bytes(whole))

    with pytest.raises(DumpArchiveError, match='is not a usable rethinkdb dump'):
        read_dump_archive(path)


def test_a_changed_crc_is_caught_at_the_end_of_the_gzip_stream(tmp_path):
    path = write_archive(tmp_path / 'd.tar.gz', table_members(sample_tables()))
    with open(path, 'rb') as stream:
        whole = bytearray(stream.read())
    whole[-8] ^= 0x01
    with open(path, 'wb') as stream:
        stream.write(bytes(whole))

    with pytest.raises(DumpArchiveError, match='truncated or corrupt .*CRC'):
        read_dump_archive(path)


def test_a_wrong_checksum_is_reported_before_any_damage(tmp_path):
    path = write_archive(tmp_path / 'd.tar.gz', [(TOP + '/db/t.json', b'not json')])

    with pytest.raises(DumpArchiveError, match='has sha256 %s, expected %s' % (sha256_of(path), '0' * 64)):
        read_dump_archive(path, sha256='0' * 64)


class SlowWriter(threading.Thread):
    """Writes a file front to back in small pieces, with pauses, as the tool writes its archive; then sets done."""

    def __init__(self, source: bytes, path, done: threading.Event, create_after: float = 0.05):
        super().__init__(daemon=True)
        self.source, self.path, self.done, self.create_after = source, str(path), done, create_after

    def run(self):
        time.sleep(self.create_after)
        with open(self.path, 'wb') as stream:
            for start in range(0, len(self.source), 997):
                stream.write(self.source[start:start + 997])
                stream.flush()
                time.sleep(0.001)
        self.done.set()


def test_an_archive_is_read_as_it_is_written_to_its_very_end(tmp_path):
    complete = write_archive(tmp_path / 'complete.tar.gz', table_members(sample_tables(blocks=300, votes=900)))
    with open(complete, 'rb') as stream:
        written = stream.read()
    done = threading.Event()
    writer = SlowWriter(written, tmp_path / 'growing.tar.gz', done)
    writer.start()

    archive = read_dump_archive(str(tmp_path / 'growing.tar.gz'), parse_documents=False, writer_done=done)

    writer.join()
    assert (archive.sha256, archive.bytes) == (hashlib.sha256(written).hexdigest(), len(written))
    assert dict((name, table.documents) for name, table in archive.tables.items()) == {'bigchain.bigchain': 300, 'bigchain.votes': 900}


def test_an_archive_the_writer_left_unfinished_is_refused(tmp_path):
    complete = write_archive(tmp_path / 'complete.tar.gz', table_members(sample_tables(blocks=300, votes=900)))
    with open(complete, 'rb') as stream:
        written = stream.read()
    done = threading.Event()
    SlowWriter(written[:len(written) // 2], tmp_path / 'growing.tar.gz', done).start()

    with pytest.raises(DumpArchiveError, match='truncated or corrupt'):
        read_dump_archive(str(tmp_path / 'growing.tar.gz'), parse_documents=False, writer_done=done)


def test_an_archive_the_writer_never_created_is_one_line(tmp_path):
    done = threading.Event()
    threading.Timer(0.05, done.set).start()

    with pytest.raises(DumpArchiveError, match='Cannot read archive .*: No such file or directory'):
        read_dump_archive(str(tmp_path / 'absent.tar.gz'), writer_done=done)


def test_a_plain_gzip_that_is_no_tar_is_refused(tmp_path):
    path = tmp_path / 'd.tar.gz'
    with gzip.open(str(path), 'wb') as stream:
        stream.write(b'just text, no tar headers here' * 100)

    with pytest.raises(DumpArchiveError, match='truncated or corrupt'):
        read_dump_archive(str(path))


def test_a_missing_archive_is_one_line(tmp_path):
    with pytest.raises(DumpArchiveError, match='Cannot read archive .*: No such file or directory'):
        read_dump_archive(str(tmp_path / 'absent.tar.gz'))


def test_the_tools_own_layout_can_be_counted_by_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(dump_archive, 'CHUNK_BYTES', 7)
    tables = dict(sample_tables(), **{'other.empty': [], 'other.one': [{'id': 1, 'text': 'a\nb'}]})
    path = write_archive(tmp_path / 'd.tar.gz', table_members(tables))

    archive = read_dump_archive(path, parse_documents=False)

    assert dict((name, table.documents) for name, table in archive.tables.items()) == \
        {'bigchain.bigchain': 30, 'bigchain.votes': 90, 'other.empty': 0, 'other.one': 1}


@pytest.mark.parametrize('data', [b'[{"id": 1}, {"id": 2}]', b'[\n{"id": 1},\n]\n', b'[\n{"id": 1}\n]', b''])
def test_counting_by_lines_refuses_any_other_layout(tmp_path, data):
    members = [(TOP + '/db/t.info', info_json('t')), (TOP + '/db/t.json', data)]

    with pytest.raises(DumpArchiveError, match='not in the layout of rethinkdb dump'):
        read_dump_archive(write_archive(tmp_path / 'd.tar.gz', members), parse_documents=False)


def test_table_line_batches_hand_out_every_document_in_whole_lines(tmp_path):
    """The chain check's feed: each table's documents as batches of whole lines, every document once, in any layout."""
    tables = sample_tables(30, 90)
    path = write_archive(tmp_path / 'dump.tar.gz', table_members(tables))
    with open(path, 'rb') as stream:
        batches = list(dump_archive.table_line_batches(stream, batch_bytes=2000))

    found: dict = {}
    for name, label, batch in batches:
        assert label == '%s/%s/%s.json' % (TOP, *name.split('.'))
        found.setdefault(name, []).extend(json.loads(line) for line in batch.split(b'\n'))
    assert found == tables
    assert len(batches) > 2
