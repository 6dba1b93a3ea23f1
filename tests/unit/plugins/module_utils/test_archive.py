"""Snapshot archives as streams: round trips that keep what a data directory needs, the three checks of one
unpacking pass (sha256 of the stored bytes, zstd checksum, file index), and safe unpacking of hostile
archives, the target removed on every failure."""

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
needs_root = pytest.mark.skipif(not AS_ROOT, reason='owners and device files need root')
VOTES_BYTES = 3 * archive.CHUNK_BYTES + 17


def make_tree(root):
    """A small data directory: nested files, an empty directory, links, odd modes and times."""
    os.makedirs(os.path.join(root, 'tables', 'empty'))
    with open(os.path.join(root, 'metadata'), 'wb') as stream:
        stream.write(b'm' * 70000)
    with open(os.path.join(root, 'tables', 'votes.data'), 'wb') as stream:
        stream.write(os.urandom(VOTES_BYTES))
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
    return entry


def sha256_of(path) -> str:
    with open(path, 'rb') as stream:
        return hashlib.sha256(stream.read()).hexdigest()


@pytest.fixture(name='tree')
def data_tree(tmp_path):
    root = str(tmp_path / 'data')
    os.mkdir(root)
    make_tree(root)
    return root


def archived(source_dir, dest, **options) -> dict:
    """Archive a directory into a file; return the facts with the file's sha256 and size."""
    with open(dest, 'wb') as sink:
        facts = archive.write_archive(source_dir, sink, **options)
    with open(dest, 'rb') as stream:
        content = stream.read()
    return dict(facts, sha256=hashlib.sha256(content).hexdigest(), bytes=len(content))


def unpack(path, target, **options) -> dict:
    with open(path, 'rb') as source:
        return archive.extract(source, target, **options)


def members_of(path) -> dict:
    with open(path, 'rb') as stream:
        raw = zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True).read()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return dict((member.name, member) for member in tar.getmembers())


# --- writing and round trips -----------------------------------------------------------------------------------

def test_round_trip_keeps_modes_times_links_and_every_byte(tree, tmp_path):
    dest = str(tmp_path / 'data.tar.zst')
    made = archived(tree, dest, level=1, threads=2)

    assert made['entries'] == 8 and made['sockets_left_out'] == [] and made['seconds'] >= 0
    assert made['raw_bytes'] == 70000 + VOTES_BYTES + len('info: ready\n')
    assert made['files'] == [dict(path='log_file', bytes=12, sha256=sha256_of(os.path.join(tree, 'log_file'))),
                             dict(path='metadata', bytes=70000, sha256=hashlib.sha256(b'm' * 70000).hexdigest()),
                             dict(path='tables/votes.data', bytes=VOTES_BYTES, sha256=sha256_of(os.path.join(tree, 'tables', 'votes.data')))]

    target = str(tmp_path / 'restored')
    unpacked = unpack(dest, target, sha256=made['sha256'].upper(), index=made['files'])

    assert (unpacked['entries'], unpacked['raw_bytes'], unpacked['sha256']) == (8, made['raw_bytes'], made['sha256'])
    assert unpacked['special_bits'] == [] and unpacked['seconds'] >= 0
    assert listing(target) == listing(tree)
    assert os.stat(os.path.join(target, 'tables', 'metadata-hard')).st_ino == os.stat(os.path.join(target, 'metadata')).st_ino


def test_members_are_named_relative_to_the_directory_with_its_own_entry(tree, tmp_path):
    dest = str(tmp_path / 'data.tar.zst')
    archived(tree, dest)

    members = members_of(dest)

    assert list(members) == ['.', 'log_file', 'metadata', 'tables', 'tables/empty', 'tables/metadata-hard', 'tables/metadata-link',
                             'tables/votes.data']
    assert members['.'].isdir() and members['.'].mode == 0o710
    assert members['tables/metadata-hard'].islnk() and members['tables/metadata-hard'].linkname == 'metadata'
    assert members['tables/metadata-link'].issym() and members['tables/metadata-link'].linkname == '../metadata'
    assert members['log_file'].mtime == 1500000000.25
    assert (members['log_file'].uname, members['log_file'].uid) == ('', os.getuid())


def test_the_archive_is_zstd_with_its_content_checksum(tree, tmp_path):
    dest = str(tmp_path / 'data.tar.zst')
    archived(tree, dest, level=1)

    with open(dest, 'rb') as stream:
        frame = zstandard.get_frame_parameters(stream.read(18))

    assert frame.has_checksum is True


def test_sparse_files_stay_sparse_when_unpacked(tmp_path):
    source = tmp_path / 'data'
    source.mkdir()
    size = 32 * archive.SPARSE_BLOCK + 123
    with open(source / 'table.db', 'wb') as stream:
        stream.truncate(size)
        stream.seek(5 * archive.SPARSE_BLOCK + 7)
        stream.write(b'written between holes')
    archived(str(source), str(tmp_path / 'data.tar.zst'))

    unpack(str(tmp_path / 'data.tar.zst'), str(tmp_path / 'restored'))

    restored = tmp_path / 'restored' / 'table.db'
    assert restored.read_bytes() == (source / 'table.db').read_bytes()
    assert restored.stat().st_size == size
    assert restored.stat().st_blocks * 512 <= 2 * archive.SPARSE_BLOCK


def test_sockets_are_left_out_and_named(tree, tmp_path):
    server = socket.socket(socket.AF_UNIX)
    server.bind(os.path.join(tree, 'tables', 'admin.sock'))
    try:
        made = archived(tree, str(tmp_path / 'data.tar.zst'))
    finally:
        server.close()

    assert made['sockets_left_out'] == ['tables/admin.sock']
    assert made['entries'] == 8 and 'tables/admin.sock' not in members_of(str(tmp_path / 'data.tar.zst'))


def test_a_fifo_is_refused(tree, tmp_path):
    os.mkfifo(os.path.join(tree, 'tables', 'pipe'))
    sink = io.BytesIO()

    with pytest.raises(ArchiveError) as refused:
        archive.write_archive(tree, sink)

    assert str(refused.value) == '%s is a device or FIFO; a data directory holds none, and a restore would refuse it' % (
        os.path.join(tree, 'tables', 'pipe'))


@needs_root
def test_a_device_is_refused(tree):
    os.mknod(os.path.join(tree, 'null'), 0o600 | stat.S_IFCHR, os.makedev(1, 3))

    with pytest.raises(ArchiveError, match='null is a device or FIFO'):
        archive.write_archive(tree, io.BytesIO())


def test_a_sink_that_fails_is_one_error(tree):
    class FullDisk:
        def write(self, chunk):
            raise OSError(28, 'No space left on device')

    with pytest.raises(ArchiveError) as failed:
        archive.write_archive(tree, FullDisk(), level=1)

    assert str(failed.value) == 'cannot archive %s: [Errno 28] No space left on device' % tree


def test_only_a_directory_is_archived(tmp_path):
    (tmp_path / 'file').write_text('')

    with pytest.raises(ArchiveError, match='^%s is not a directory$' % (tmp_path / 'file')):
        archive.write_archive(str(tmp_path / 'file'), io.BytesIO())
    with pytest.raises(ArchiveError, match='^%s is not a directory$' % (tmp_path / 'missing')):
        archive.write_archive(str(tmp_path / 'missing'), io.BytesIO())


def test_without_zstandard_archives_say_so(tree, tmp_path, monkeypatch):
    monkeypatch.setattr(archive, 'ZSTANDARD_IMPORT_ERROR', 'Traceback: No module named zstandard')

    with pytest.raises(ArchiveError, match='^the Python library zstandard is required for tar.zst archives$'):
        archive.write_archive(tree, io.BytesIO())
    with pytest.raises(ArchiveError, match='^the Python library zstandard is required for tar.zst archives$'):
        archive.extract(io.BytesIO(b''), str(tmp_path / 'restored'))
    assert not os.path.exists(str(tmp_path / 'restored'))


# --- the checks of unpacking -----------------------------------------------------------------------------------

@pytest.fixture(name='random_archive')
def archive_of_random_data(tmp_path):
    """An archive of one incompressible file, so that its bytes lie in the archive as stored: a flipped byte
    there changes the file and nothing a tar reader could notice."""
    source = tmp_path / 'random'
    source.mkdir()
    (source / 'table.db').write_bytes(os.urandom(300000))
    dest = str(tmp_path / 'random.tar.zst')
    made = archived(str(source), dest, level=1, threads=1)
    return dict(made, path=dest)


def flip_byte(path, offset) -> None:
    with open(path, 'r+b') as stream:
        stream.seek(offset)
        byte = stream.read(1)
        stream.seek(offset)
        stream.write(bytes([byte[0] ^ 0x10]))


def test_the_zstd_checksum_catches_a_flipped_bit_without_any_other_check(random_archive, tmp_path):
    flip_byte(random_archive['path'], random_archive['bytes'] // 2)
    target = str(tmp_path / 'restored')

    with pytest.raises(ArchiveError) as damaged:
        unpack(random_archive['path'], target)

    assert str(damaged.value) == "the archive is not a readable tar.zst archive: zstd decompress error: Restored data doesn't match checksum"
    assert not os.path.lexists(target)


def test_a_wrong_sha256_of_the_stored_bytes_is_refused_and_nothing_is_left(random_archive, tmp_path):
    target = str(tmp_path / 'restored')

    with pytest.raises(ArchiveError) as refused:
        unpack(random_archive['path'], target, sha256='0' * 64)

    assert str(refused.value) == ('the archive has sha256 %s, expected %s: it is not the archive recorded, or it was damaged'
                                  % (random_archive['sha256'], '0' * 64))
    assert not os.path.lexists(target)


def test_the_sha256_covers_bytes_after_the_archive(random_archive, tmp_path):
    """A zstd skippable frame appended: every decompressor ignores it, the sha256 of the stored bytes does not."""
    with open(random_archive['path'], 'ab') as stream:
        stream.write((0x184D2A50).to_bytes(4, 'little') + (1024).to_bytes(4, 'little') + bytes(1024))
    unpack(random_archive['path'], str(tmp_path / 'unchecked'), durable=False)
    target = str(tmp_path / 'restored')

    with pytest.raises(ArchiveError, match='^the archive has sha256 [0-9a-f]{64}, expected %s' % random_archive['sha256']):
        unpack(random_archive['path'], target, sha256=random_archive['sha256'])
    assert not os.path.lexists(target)


def test_the_file_index_catches_a_changed_file_even_when_the_sha256_given_matches(tree, tmp_path):
    """An archive swapped together with its recorded sha256: the index of the set still tells."""
    recorded = archived(tree, str(tmp_path / 'recorded.tar.zst'))
    with open(os.path.join(tree, 'metadata'), 'r+b') as stream:
        stream.write(b'M')
    swapped = archived(tree, str(tmp_path / 'swapped.tar.zst'))
    target = str(tmp_path / 'restored')

    with pytest.raises(ArchiveError) as refused:
        unpack(str(tmp_path / 'swapped.tar.zst'), target, sha256=swapped['sha256'], index=recorded['files'])

    assert str(refused.value) == ("member 'metadata' unpacked as 70000 bytes with sha256 %s, but was archived as 70000 bytes with "
                                  "sha256 %s" % (hashlib.sha256(b'M' + b'm' * 69999).hexdigest(), hashlib.sha256(b'm' * 70000).hexdigest()))
    assert not os.path.lexists(target)


def test_the_file_index_names_a_missing_and_an_extra_file(tree, tmp_path):
    made = archived(tree, str(tmp_path / 'data.tar.zst'))
    longer = made['files'] + [dict(path='tables/lost.data', bytes=1, sha256='0' * 64)]
    shorter = [entry for entry in made['files'] if entry['path'] != 'log_file']

    with pytest.raises(ArchiveError) as missing:
        unpack(str(tmp_path / 'data.tar.zst'), str(tmp_path / 'a'), index=longer)
    with pytest.raises(ArchiveError) as extra:
        unpack(str(tmp_path / 'data.tar.zst'), str(tmp_path / 'b'), index=shorter)

    assert str(missing.value) == "the archive lacks 1 file(s) of its index, such as 'tables/lost.data'"
    assert str(extra.value) == "member 'log_file' is not in the archive's file index: the archive is not the one recorded"
    assert sorted(os.listdir(str(tmp_path))) == ['data', 'data.tar.zst']


def test_a_truncated_archive_is_unreadable_and_leaves_nothing(tree, tmp_path):
    dest = str(tmp_path / 'data.tar.zst')
    archived(tree, dest, level=1)
    with open(dest, 'r+b') as stream:
        stream.truncate(os.path.getsize(dest) // 2)
    target = str(tmp_path / 'restored')

    with pytest.raises(ArchiveError, match='^the archive is not a readable tar.zst archive: |ends inside member'):
        unpack(dest, target)
    assert not os.path.lexists(target)


def test_an_existing_target_is_refused_untouched(tree, tmp_path):
    dest = str(tmp_path / 'data.tar.zst')
    archived(tree, dest)
    before = listing(tree)

    with pytest.raises(ArchiveError, match='^%s exists; archives are unpacked into a new directory only$' % tree):
        unpack(dest, tree)
    assert listing(tree) == before


def test_durable_unpacking_fsyncs_every_file_and_directory(tree, tmp_path, monkeypatch):
    dest = str(tmp_path / 'data.tar.zst')
    archived(tree, dest)
    synced = []
    real_fsync = os.fsync

    def fsync(descriptor):
        synced.append(os.readlink('/proc/self/fd/%d' % descriptor))
        real_fsync(descriptor)

    monkeypatch.setattr(os, 'fsync', fsync)
    target = str(tmp_path / 'restored')

    unpack(dest, target)

    names = ('log_file', 'metadata', 'tables', 'tables/empty', 'tables/votes.data')
    expected = [target, str(tmp_path)] + [os.path.join(target, name) for name in names]
    assert sorted(set(synced)) == sorted(expected)
    synced.clear()
    unpack(dest, str(tmp_path / 'quick'), durable=False)
    assert synced == []


def test_set_id_and_sticky_bits_are_stripped_and_named(tmp_path):
    source = tmp_path / 'data'
    (source / 'shared').mkdir(parents=True)
    (source / 'tmp').mkdir()
    (source / 'tool').write_bytes(b'#!/bin/sh\n')
    (source / 'tables').write_bytes(b'x')
    os.chmod(str(source / 'tool'), 0o4755)
    os.chmod(str(source / 'tables'), 0o2640)
    os.chmod(str(source / 'shared'), 0o2775)
    os.chmod(str(source / 'tmp'), 0o1777)
    made = archived(str(source), str(tmp_path / 'data.tar.zst'))
    target = tmp_path / 'restored'

    unpacked = unpack(str(tmp_path / 'data.tar.zst'), str(target), index=made['files'])

    assert sorted(unpacked['special_bits']) == ['shared', 'tables', 'tmp', 'tool']
    assert [stat.S_IMODE(os.stat(str(target / name)).st_mode) for name in ('tool', 'tables', 'shared', 'tmp')] == [
        0o755, 0o640, 0o775, 0o777]


@needs_root
def test_one_owner_is_given_to_every_entry(tree, tmp_path):
    os.chown(os.path.join(tree, 'log_file'), 4321, 4322)
    dest = str(tmp_path / 'data.tar.zst')
    archived(tree, dest)

    unpack(dest, str(tmp_path / 'kept'))
    unpack(dest, str(tmp_path / 'given'), owner=(999, 998))
    unpack(dest, str(tmp_path / 'user'), owner=(999, None))

    kept = listing(str(tmp_path / 'kept'))
    assert set((entry['uid'], entry['gid']) for entry in kept.values()) == {(0, 0)}
    given = listing(str(tmp_path / 'given'))
    assert set((entry['uid'], entry['gid']) for entry in given.values()) == {(999, 998)}
    assert given['tables/metadata-link']['link'] == '../metadata'
    user = listing(str(tmp_path / 'user'))
    assert set((entry['uid'], entry['gid']) for entry in user.values()) == {(999, 0)}


# --- hostile archives ----------------------------------------------------------------------------------------

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
        stream.write(zstandard.ZstdCompressor(write_checksum=True).compress(raw.getvalue()))
    return path


ROOT = ({'name': '.', 'type': tarfile.DIRTYPE, 'mode': 0o755}, b'')
HOSTILE = {
    'absolute name': ([ROOT, ({'name': '/tmp/evil'}, b'x')], "member '/tmp/evil' has an absolute name"),
    'dot-dot name': ([ROOT, ({'name': 'a/../../evil'}, b'x')], "member 'a/../../evil' has a .. component"),
    'symlink outside': ([ROOT, ({'name': 'link', 'type': tarfile.SYMTYPE, 'linkname': '../../etc'}, b'')],
                        "symbolic link 'link' points outside the target (../../etc)"),
    'absolute symlink': ([ROOT, ({'name': 'link', 'type': tarfile.SYMTYPE, 'linkname': '/etc/passwd'}, b'')],
                         "symbolic link 'link' points outside the target (/etc/passwd)"),
    'write through a symlink': ([ROOT, ({'name': 'sub', 'type': tarfile.DIRTYPE}, b''),
                                 ({'name': 'link', 'type': tarfile.SYMTYPE, 'linkname': 'sub'}, b''),
                                 ({'name': 'link/file'}, b'x')], "member 'link/file' lies under a symbolic link"),
    'hard link outside': ([ROOT, ({'name': 'hard', 'type': tarfile.LNKTYPE, 'linkname': '/etc/passwd'}, b'')],
                          "member '/etc/passwd' has an absolute name"),
    'hard link up': ([ROOT, ({'name': 'hard', 'type': tarfile.LNKTYPE, 'linkname': '../secret'}, b'')],
                     "member '../secret' has a .. component"),
    'hard link to nothing unpacked': ([ROOT, ({'name': 'hard', 'type': tarfile.LNKTYPE, 'linkname': 'later'}, b''),
                                       ({'name': 'later'}, b'x')], "hard link 'hard' points to 'later', not a file unpacked before it"),
    'character device': ([ROOT, ({'name': 'null', 'type': tarfile.CHRTYPE, 'devmajor': 1, 'devminor': 3}, b'')],
                         "member 'null' is a device, FIFO or other special file"),
    'block device': ([ROOT, ({'name': 'disk', 'type': tarfile.BLKTYPE, 'devmajor': 8, 'devminor': 0}, b'')],
                     "member 'disk' is a device, FIFO or other special file"),
    'fifo': ([ROOT, ({'name': 'pipe', 'type': tarfile.FIFOTYPE}, b'')], "member 'pipe' is a device, FIFO or other special file"),
    'root as a file': ([({'name': '.'}, b'x')], "member '.' stands for the target directory but is not a directory"),
    'symlink chain': ([ROOT, ({'name': 'up', 'type': tarfile.SYMTYPE, 'linkname': '.'}, b''),
                       ({'name': 'out', 'type': tarfile.SYMTYPE, 'linkname': 'up/../x'}, b'')],
                      "symbolic link 'out' resolves outside the target"),
}


@pytest.mark.parametrize('case', sorted(HOSTILE))
def test_hostile_members_are_refused_and_the_target_removed(case, tmp_path):
    members, message = HOSTILE[case]
    path = hostile(str(tmp_path / 'evil.tar.zst'), *members)
    target = str(tmp_path / 'restored')

    with pytest.raises(ArchiveError) as refused:
        unpack(path, target)

    assert str(refused.value) == message
    assert sorted(os.listdir(str(tmp_path))) == ['evil.tar.zst']


def test_a_read_only_directory_unpacked_before_a_failure_is_removed_too(tmp_path):
    path = hostile(str(tmp_path / 'evil.tar.zst'), ROOT, ({'name': 'locked', 'type': tarfile.DIRTYPE, 'mode': 0o500}, b''),
                   ({'name': 'locked/file'}, b'x'), ({'name': 'pipe', 'type': tarfile.FIFOTYPE}, b''))

    with pytest.raises(ArchiveError, match='special file'):
        unpack(path, str(tmp_path / 'restored'))
    assert sorted(os.listdir(str(tmp_path))) == ['evil.tar.zst']


def test_a_plain_tar_layout_unpacks_the_same(tmp_path):
    """Archives made by `tar -C dir -c .` name members ./x; they unpack the same."""
    path = hostile(str(tmp_path / 'plain.tar.zst'), ({'name': './', 'type': tarfile.DIRTYPE, 'mode': 0o700}, b''),
                   ({'name': './sub', 'type': tarfile.DIRTYPE, 'mode': 0o755}, b''),
                   ({'name': './sub/file', 'mode': 0o644, 'mtime': 1234567890}, b'content'),
                   ({'name': './sub/link', 'type': tarfile.SYMTYPE, 'linkname': 'file'}, b''))
    target = str(tmp_path / 'restored')

    result = unpack(path, target, durable=False)

    assert (result['entries'], result['raw_bytes']) == (4, 7)
    with open(os.path.join(target, 'sub', 'link'), encoding='utf-8') as stream:
        assert stream.read() == 'content'
    assert os.stat(os.path.join(target, 'sub', 'file')).st_mtime == 1234567890
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o700
