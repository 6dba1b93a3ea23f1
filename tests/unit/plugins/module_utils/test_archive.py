"""Archive streams: round trips that keep what a data directory needs, and safe extraction of hostile archives."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import stat
import tarfile

import pytest
import zstandard

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import archive
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.archive import ArchiveError

AS_ROOT = os.geteuid() == 0


def make_tree(root):
    """A small data directory: nested files, an empty directory, links, odd modes and times."""
    os.makedirs(os.path.join(root, 'tables', 'empty'))
    with open(os.path.join(root, 'metadata'), 'wb') as stream:
        stream.write(b'm' * 70000)
    with open(os.path.join(root, 'tables', 'votes.data'), 'wb') as stream:
        stream.write(os.urandom(3 * archive.CHUNK_BYTES + 17))
    with open(os.path.join(root, 'log_file'), 'w', encoding='utf-8') as stream:
        stream.write('info: ready\n')
    os.symlink('../metadata', os.path.join(root, 'tables', 'metadata-link'))
    os.link(os.path.join(root, 'metadata'), os.path.join(root, 'tables', 'metadata-hard'))
    os.chmod(os.path.join(root, 'log_file'), 0o640)
    os.chmod(os.path.join(root, 'tables'), 0o750)
    os.chmod(root, 0o710)
    os.utime(os.path.join(root, 'log_file'), (1500000000.25, 1500000000.25))
    os.utime(os.path.join(root, 'tables', 'empty'), (1400000000, 1400000000))


def listing(root):
    """What a restore must bring back, per relative path: type, mode, owner, size, mtime, content hash, link."""
    entries = {'.': describe(root)}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            entries[os.path.relpath(path, root)] = describe(path)
    return entries


def describe(path):
    status = os.lstat(path)
    entry = {'mode': stat.S_IMODE(status.st_mode), 'type': stat.S_IFMT(status.st_mode),
             'uid': status.st_uid, 'gid': status.st_gid, 'mtime': status.st_mtime}
    if stat.S_ISREG(status.st_mode):
        with open(path, 'rb') as stream:
            entry['sha256'] = hashlib.sha256(stream.read()).hexdigest()
    if stat.S_ISLNK(status.st_mode):
        entry['link'] = os.readlink(path)
        del entry['mtime']
    return entry


@pytest.fixture(name='tree')
def data_tree(tmp_path):
    root = str(tmp_path / 'data')
    os.mkdir(root)
    make_tree(root)
    return root


def test_round_trip_keeps_modes_times_owners_and_links(tree, tmp_path):
    dest = str(tmp_path / 'data.tar.zst')
    created = archive.create(tree, dest, level=1, threads=2)

    assert sorted(os.listdir(str(tmp_path))) == ['data', 'data.tar.zst']
    assert (created['sha256'], created['bytes']) == archive.sha256_file(dest)
    assert created['files'] == 8
    assert created['raw_bytes'] == 70000 + 3 * archive.CHUNK_BYTES + 17 + len('info: ready\n')
    assert archive.survey(dest, created['sha256'].upper()) == (created['raw_bytes'], created['sha256'])
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600

    target = str(tmp_path / 'restored')
    extracted = archive.extract(dest, target, sha256=created['sha256'], size=created['bytes'])

    assert extracted['files'] == created['files']
    assert extracted['raw_bytes'] == created['raw_bytes']
    assert listing(target) == listing(tree)
    assert os.stat(os.path.join(target, 'tables', 'metadata-hard')).st_ino == os.stat(os.path.join(target, 'metadata')).st_ino


def test_members_are_named_relative_to_the_directory_with_its_own_entry(tree, tmp_path):
    dest = str(tmp_path / 'data.tar.zst')
    archive.create(tree, dest)
    with open(dest, 'rb') as stream:
        raw = zstandard.ZstdDecompressor().stream_reader(stream).read()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = {member.name: member for member in tar.getmembers()}

    assert sorted(members) == ['.', 'log_file', 'metadata', 'tables', 'tables/empty', 'tables/metadata-hard',
                               'tables/metadata-link', 'tables/votes.data']
    assert members['.'].isdir() and members['.'].mode == 0o710
    assert members['tables/metadata-hard'].islnk() and members['tables/metadata-hard'].linkname == 'metadata'
    assert members['log_file'].mtime == 1500000000.25
    assert (members['log_file'].uname, members['log_file'].uid) == ('', os.getuid())


def test_sparse_files_stay_sparse_when_unpacked(tmp_path):
    source = tmp_path / 'data'
    source.mkdir()
    size = 32 * archive.SPARSE_BLOCK + 123
    with open(source / 'table.db', 'wb') as stream:
        stream.truncate(size)
        stream.seek(5 * archive.SPARSE_BLOCK + 7)
        stream.write(b'written between holes')
    archive.create(str(source), str(tmp_path / 'data.tar.zst'))

    archive.extract(str(tmp_path / 'data.tar.zst'), str(tmp_path / 'restored'))

    restored = tmp_path / 'restored' / 'table.db'
    assert restored.read_bytes() == (source / 'table.db').read_bytes()
    assert restored.stat().st_size == size
    assert restored.stat().st_blocks * 512 <= 2 * archive.SPARSE_BLOCK


def test_create_skips_sockets(tree, tmp_path):
    server = socket.socket(socket.AF_UNIX)
    server.bind(os.path.join(tree, 'admin.sock'))
    try:
        created = archive.create(tree, str(tmp_path / 'data.tar.zst'))
    finally:
        server.close()

    assert created['skipped'] == ['admin.sock']
    assert created['files'] == 8


def test_create_refuses_a_fifo_and_leaves_no_file(tree, tmp_path):
    os.mkfifo(os.path.join(tree, 'tables', 'pipe'))
    dest = str(tmp_path / 'data.tar.zst')

    with pytest.raises(ArchiveError, match='pipe is a device or FIFO'):
        archive.create(tree, dest)
    assert not os.path.exists(dest) and not os.path.exists(dest + '.partial')


@pytest.mark.skipif(not AS_ROOT, reason='creating a device file needs root')
def test_create_refuses_a_device(tree, tmp_path):
    os.mknod(os.path.join(tree, 'null'), 0o600 | stat.S_IFCHR, os.makedev(1, 3))

    with pytest.raises(ArchiveError, match='null is a device'):
        archive.create(tree, str(tmp_path / 'data.tar.zst'))


def test_create_reports_a_destination_it_cannot_write(tree, tmp_path):
    dest = str(tmp_path / 'missing' / 'data.tar.zst')

    with pytest.raises(ArchiveError, match='cannot archive .* into .*missing/data.tar.zst: .*No such file or directory'):
        archive.create(tree, dest)


def test_create_replaces_an_existing_destination_atomically(tree, tmp_path):
    dest = str(tmp_path / 'data.tar.zst')
    with open(dest, 'wb') as stream:
        stream.write(b'old')

    created = archive.create(tree, dest)

    assert archive.sha256_file(dest)[0] == created['sha256']


@pytest.mark.skipif(not AS_ROOT, reason='owners can only be given away by root')
def test_extract_restores_numeric_owners_and_takes_an_override(tree, tmp_path):
    os.chown(os.path.join(tree, 'log_file'), 4321, 4322)
    dest = str(tmp_path / 'data.tar.zst')
    archive.create(tree, dest)

    archive.extract(dest, str(tmp_path / 'same'))
    archive.extract(dest, str(tmp_path / 'other'), owner=(999, None))

    assert (os.stat(str(tmp_path / 'same' / 'log_file')).st_uid, os.stat(str(tmp_path / 'same' / 'log_file')).st_gid) == (4321, 4322)
    assert {describe(str(path))['uid'] for path in [tmp_path / 'other', tmp_path / 'other' / 'log_file', tmp_path / 'other' / 'tables']} == {999}
    assert os.stat(str(tmp_path / 'other' / 'log_file')).st_gid == 4322
    assert os.lstat(str(tmp_path / 'other' / 'tables' / 'metadata-link')).st_uid == 999


def test_extract_refuses_a_wrong_checksum_or_size_before_creating_anything(tree, tmp_path):
    dest = str(tmp_path / 'data.tar.zst')
    created = archive.create(tree, dest)
    target = str(tmp_path / 'restored')

    with pytest.raises(ArchiveError, match='has sha256 .*, expected 0000'):
        archive.extract(dest, target, sha256='0' * 64)
    with pytest.raises(ArchiveError, match='expected 5'):
        archive.extract(dest, target, size=5, sha256=created['sha256'])
    assert not os.path.exists(target)


def test_extract_refuses_an_existing_target(tree, tmp_path):
    dest = str(tmp_path / 'data.tar.zst')
    archive.create(tree, dest)

    with pytest.raises(ArchiveError, match='exists'):
        archive.extract(dest, tree)


def test_truncated_archive_is_unreadable_and_leaves_nothing(tree, tmp_path):
    dest = str(tmp_path / 'data.tar.zst')
    archive.create(tree, dest, level=1)
    with open(dest, 'r+b') as stream:
        stream.truncate(os.path.getsize(dest) // 2)
    target = str(tmp_path / 'restored')

    with pytest.raises(ArchiveError, match='not a readable tar.zst archive|ends inside member'):
        archive.extract(dest, target)
    with pytest.raises(ArchiveError, match='not a readable tar.zst archive'):
        archive.survey(dest)
    assert not os.path.exists(target)


def test_survey_hashes_every_byte_and_reports_a_wrong_sha256_first(tree, tmp_path):
    dest = str(tmp_path / 'data.tar.zst')
    created = archive.create(tree, dest, level=1)
    with open(dest, 'ab') as stream:
        stream.write(b'trailing bytes the decompressor never reads')
    longer = archive.sha256_file(dest)[0]

    assert archive.survey(dest) == (created['raw_bytes'], longer)
    with pytest.raises(ArchiveError, match='has sha256 %s, expected %s' % (longer, created['sha256'])):
        archive.survey(dest, created['sha256'])

    with open(dest, 'r+b') as stream:
        stream.truncate(os.path.getsize(dest) // 2)
    with pytest.raises(ArchiveError, match='has sha256 [0-9a-f]{64}, expected %s' % created['sha256']):
        archive.survey(dest, created['sha256'])


def hostile(path, *members):
    """Write a tar.zst of (TarInfo fields, data) pairs, as an attacker would craft it."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode='w', format=tarfile.PAX_FORMAT) as tar:
        for fields, data in members:
            info = tarfile.TarInfo(fields['name'])
            for key, value in fields.items():
                setattr(info, key, value)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with open(path, 'wb') as stream:
        stream.write(zstandard.ZstdCompressor().compress(raw.getvalue()))
    return path


ROOT = ({'name': '.', 'type': tarfile.DIRTYPE, 'mode': 0o755}, b'')
HOSTILE = {
    'absolute name': ([ROOT, ({'name': '/tmp/evil'}, b'x')], 'absolute name'),
    'dot-dot name': ([ROOT, ({'name': 'a/../../evil'}, b'x')], r'\.\. component'),
    'symlink outside': ([ROOT, ({'name': 'link', 'type': tarfile.SYMTYPE, 'linkname': '../../etc'}, b'')], 'points outside'),
    'absolute symlink': ([ROOT, ({'name': 'link', 'type': tarfile.SYMTYPE, 'linkname': '/etc/passwd'}, b'')], 'points outside'),
    'write through a symlink': ([ROOT, ({'name': 'sub', 'type': tarfile.DIRTYPE}, b''),
                                 ({'name': 'link', 'type': tarfile.SYMTYPE, 'linkname': 'sub'}, b''),
                                 ({'name': 'link/file'}, b'x')], 'under a symbolic link'),
    'hard link outside': ([ROOT, ({'name': 'hard', 'type': tarfile.LNKTYPE, 'linkname': '/etc/passwd'}, b'')], 'absolute name'),
    'hard link up': ([ROOT, ({'name': 'hard', 'type': tarfile.LNKTYPE, 'linkname': '../secret'}, b'')], r'\.\. component'),
    'hard link to nothing unpacked': ([ROOT, ({'name': 'hard', 'type': tarfile.LNKTYPE, 'linkname': 'later'}, b''),
                                       ({'name': 'later'}, b'x')], 'not a file unpacked before it'),
    'character device': ([ROOT, ({'name': 'null', 'type': tarfile.CHRTYPE, 'devmajor': 1, 'devminor': 3}, b'')], 'special file'),
    'block device': ([ROOT, ({'name': 'disk', 'type': tarfile.BLKTYPE, 'devmajor': 8, 'devminor': 0}, b'')], 'special file'),
    'fifo': ([ROOT, ({'name': 'pipe', 'type': tarfile.FIFOTYPE}, b'')], 'special file'),
    'root as a file': ([({'name': '.'}, b'x')], 'not a directory'),
}


@pytest.mark.parametrize('case', sorted(HOSTILE))
def test_extract_refuses_hostile_members_and_removes_the_target(case, tmp_path):
    members, message = HOSTILE[case]
    path = hostile(str(tmp_path / 'evil.tar.zst'), *members)
    target = str(tmp_path / 'restored')

    with pytest.raises(ArchiveError, match=message):
        archive.extract(path, target)
    assert not os.path.lexists(target)
    assert sorted(os.listdir(str(tmp_path))) == ['evil.tar.zst']


@pytest.mark.parametrize('with_filter', [True, False], ids=['python-filter', 'own-check-only'])
def test_extract_refuses_a_symlink_chain_that_escapes(with_filter, tmp_path, monkeypatch):
    """`up -> .` is harmless alone, and `out -> up/../x` reads as inside; together they lead out. Python's data
    filter (3.12+) sees it on disk; without it (Python 3.9 to 3.11) the final check on disk must."""
    if not with_filter:
        monkeypatch.delattr(tarfile, 'data_filter', raising=False)
    path = hostile(str(tmp_path / 'evil.tar.zst'), ROOT,
                   ({'name': 'up', 'type': tarfile.SYMTYPE, 'linkname': '.'}, b''),
                   ({'name': 'out', 'type': tarfile.SYMTYPE, 'linkname': 'up/../x'}, b''))
    target = str(tmp_path / 'restored')

    with pytest.raises(ArchiveError, match='outside'):
        archive.extract(path, target)
    assert not os.path.lexists(target)


def test_extract_accepts_a_plain_tar_layout(tmp_path):
    """Archives made by `tar -C dir -c .` name members ./x; they unpack the same."""
    path = hostile(str(tmp_path / 'plain.tar.zst'), ({'name': './', 'type': tarfile.DIRTYPE, 'mode': 0o700}, b''),
                   ({'name': './sub', 'type': tarfile.DIRTYPE, 'mode': 0o755}, b''),
                   ({'name': './sub/file', 'mode': 0o644, 'mtime': 1234567890}, b'content'),
                   ({'name': './sub/link', 'type': tarfile.SYMTYPE, 'linkname': 'file'}, b''))
    target = str(tmp_path / 'restored')

    result = archive.extract(path, target, durable=False)

    assert (result['files'], result['raw_bytes']) == (4, 7)
    with open(os.path.join(target, 'sub', 'link'), encoding='utf-8') as stream:
        assert stream.read() == 'content'
    assert os.stat(os.path.join(target, 'sub', 'file')).st_mtime == 1234567890
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o700


def test_verify_file(tmp_path):
    path = str(tmp_path / 'part')
    with open(path, 'wb') as stream:
        stream.write(b'abc')
    digest = hashlib.sha256(b'abc').hexdigest()

    archive.verify_file(path, digest.upper(), 3)
    with pytest.raises(ArchiveError, match='has 3 bytes, expected 4'):
        archive.verify_file(path, digest, 4)
