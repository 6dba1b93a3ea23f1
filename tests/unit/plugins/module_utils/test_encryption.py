"""age encryption of parts (pyrage): keys read and checked, and archives that round-trip through
encryption, or fail cleanly with the wrong key, without a private key in any message."""

from __future__ import annotations

import hashlib
import io
import os
import threading

import pyrage
import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import archive, encryption
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.archive import ArchiveError
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.encryption import EncryptionError


def key_pair() -> tuple:
    """(identity text, recipient text) of a fresh age X25519 key."""
    identity = pyrage.x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def identity_file(path, *secrets, comments=True) -> str:
    """An identity file as age-keygen writes it: comments, then the key; several keys one after another."""
    lines = []
    for secret in secrets:
        if comments:
            lines += ['# created: 2026-11-24T16:30:00Z', '# public key: %s' % pyrage.x25519.Identity.from_str(secret).to_public(), '']
        lines.append('  %s  ' % secret)
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


def stage_threads() -> list:
    return [thread for thread in threading.enumerate() if thread.name.startswith('age ')]


@pytest.fixture(name='tree')
def data_tree(tmp_path):
    root = tmp_path / 'data'
    (root / 'tables').mkdir(parents=True)
    (root / 'metadata').write_bytes(b'metadata' * 1000)
    (root / 'tables' / 'votes').write_bytes(os.urandom(200000))
    return str(root)


def listing(root) -> dict:
    found = {}
    for directory, dummy, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, 'rb') as stream:
                found[os.path.relpath(path, root)] = hashlib.sha256(stream.read()).hexdigest()
    return found


# --- keys --------------------------------------------------------------------------------------------------

def test_parse_recipients_reads_age_public_keys():
    first, second = key_pair()[1], key_pair()[1]

    recipients = encryption.parse_recipients([first, ' %s\n' % second])

    assert [str(recipient) for recipient in recipients] == [first, second]


@pytest.mark.parametrize('text', ['age1short', 'AGE-SECRET-KEY-1QQQ', 'ssh-ed25519 AAAA', None, 42])
def test_parse_recipients_names_what_is_not_a_recipient(text):
    with pytest.raises(EncryptionError) as refused:
        encryption.parse_recipients([key_pair()[1], text])

    assert str(refused.value) == '%r is not an age X25519 recipient (a public key like age1...): give the output of age-keygen -y' % (text,)


def test_read_identities_skips_comments_and_blank_lines(tmp_path):
    first, second = key_pair(), key_pair()

    identities = encryption.read_identities(identity_file(tmp_path / 'keys.txt', first[0], second[0]))

    assert [str(identity.to_public()) for identity in identities] == [first[1], second[1]]


def test_read_identities_says_what_is_wrong_without_showing_a_key(tmp_path):
    secret = key_pair()[0]
    path = str(tmp_path / 'identity.txt')
    cases = [
        (None, 'cannot read the identity file %s: No such file or directory' % path),
        ('# only a comment\n\n', 'the identity file %s holds no age identity' % path),
        ('# key\n%s\nage1recipient\n' % secret, 'line 3 of %s is not an age X25519 identity (AGE-SECRET-KEY-1...)' % path),
        ('# key\n\n%sXYZ\n' % secret[:-3], 'line 3 of %s is not a valid age identity' % path),
    ]
    for content, message in cases:
        if content is not None:
            (tmp_path / 'identity.txt').write_text(content)
        with pytest.raises(EncryptionError) as refused:
            encryption.read_identities(path)
        assert str(refused.value) == message
        assert secret[16:] not in str(refused.value)


def test_check_identities_accepts_a_key_of_one_recipient(tmp_path):
    mine, other = key_pair(), key_pair()
    identities = encryption.read_identities(identity_file(tmp_path / 'keys.txt', mine[0]))

    encryption.check_identities(identities, [other[1], mine[1]], 'part nodes/node1/data.tar.zst')


def test_check_identities_refuses_a_wrong_key_naming_public_keys_only(tmp_path):
    mine, other = key_pair(), key_pair()
    identities = encryption.read_identities(identity_file(tmp_path / 'keys.txt', mine[0]))

    with pytest.raises(EncryptionError) as refused:
        encryption.check_identities(identities, [other[1]], 'part nodes/node1/data.tar.zst')

    assert str(refused.value) == ('part nodes/node1/data.tar.zst is encrypted to %s, and the identity file holds the key(s) of %s: '
                                  'give the identity of one of its recipients' % (other[1], mine[1]))
    assert mine[0] not in str(refused.value) and mine[0].lower()[16:] not in str(refused.value).lower()


def test_without_pyrage_encryption_says_so(monkeypatch, tmp_path):
    monkeypatch.setattr(encryption, 'PYRAGE_IMPORT_ERROR', 'Traceback: No module named pyrage')

    for call in (lambda: encryption.parse_recipients([key_pair()[1]]), lambda: encryption.read_identities(str(tmp_path / 'x')),
                 lambda: encryption.decrypting(io.BytesIO(), [])):
        with pytest.raises(EncryptionError, match='^the Python library pyrage is required for encrypted backups$'):
            call()


def test_without_pyrage_an_encrypted_archive_is_refused_and_leaves_no_target(monkeypatch, tmp_path):
    monkeypatch.setattr(encryption, 'PYRAGE_IMPORT_ERROR', 'Traceback: No module named pyrage')
    target = str(tmp_path / 'restored')

    with pytest.raises(EncryptionError, match='^the Python library pyrage is required for encrypted backups$'):
        archive.extract(io.BytesIO(b'age-encryption.org/v1\n'), target, identities=['an identity'])

    assert not os.path.lexists(target)


# --- streams -----------------------------------------------------------------------------------------------

def test_encrypting_and_decrypting_streams_round_trip():
    secret, public = key_pair()
    content = os.urandom(3 * 1024 * 1024 + 5)
    sink = io.BytesIO()

    writer = encryption.encrypting(sink, [public])
    for start in range(0, len(content), 500000):
        writer.write(content[start:start + 500000])
    writer.close()
    reader = encryption.decrypting(io.BytesIO(sink.getvalue()), [pyrage.x25519.Identity.from_str(secret)])
    pieces = []
    while True:
        piece = reader.read(65536)
        if not piece:
            break
        pieces.append(piece)
    reader.close()

    assert sink.getvalue().startswith(b'age-encryption.org/v1\n') and content[:1000] not in sink.getvalue()
    assert b''.join(pieces) == content
    assert stage_threads() == []


def test_encrypting_to_a_bad_recipient_starts_nothing():
    with pytest.raises(EncryptionError, match="^'age1nope' is not an age X25519 recipient"):
        encryption.encrypting(io.BytesIO(), ['age1nope'])
    assert stage_threads() == []


# --- archives ----------------------------------------------------------------------------------------------

def test_an_encrypted_archive_round_trips_for_any_of_its_recipients(tree, tmp_path):
    first, second = key_pair(), key_pair()
    dest = str(tmp_path / 'data.tar.zst.age')
    with open(dest, 'wb') as sink:
        made = archive.write_archive(tree, sink, level=1, recipients=[first[1], second[1]])
    with open(dest, 'rb') as stream:
        stored = stream.read()

    with open(dest, 'rb') as source:
        unpacked = archive.extract(source, str(tmp_path / 'restored'), sha256=hashlib.sha256(stored).hexdigest(), index=made['files'],
                                   identities=encryption.read_identities(identity_file(tmp_path / 'second.txt', second[0])))

    assert stored.startswith(b'age-encryption.org/v1\n')
    assert (unpacked['entries'], unpacked['raw_bytes']) == (made['entries'], made['raw_bytes']) == (4, 208000)
    assert listing(str(tmp_path / 'restored')) == listing(tree)
    assert stage_threads() == []


def test_a_wrong_key_fails_cleanly_and_leaves_nothing(tree, tmp_path):
    public = key_pair()[1]
    dest = str(tmp_path / 'data.tar.zst.age')
    with open(dest, 'wb') as sink:
        archive.write_archive(tree, sink, level=1, recipients=[public])
    wrong = [pyrage.x25519.Identity.generate()]
    target = str(tmp_path / 'restored')

    with open(dest, 'rb') as source:
        with pytest.raises(ArchiveError) as refused:
            archive.extract(source, target, identities=wrong)

    assert str(refused.value) == 'the archive is not a readable tar.zst (age) archive: age decryption failed: No matching keys found'
    assert not os.path.lexists(target)
    assert stage_threads() == []


def test_a_damaged_encrypted_archive_fails_cleanly(tree, tmp_path):
    secret, public = key_pair()
    sink = io.BytesIO()
    archive.write_archive(tree, sink, level=1, recipients=[public])
    damaged = bytearray(sink.getvalue())
    damaged[len(damaged) // 2] ^= 1
    target = str(tmp_path / 'restored')

    with pytest.raises(ArchiveError, match=r'^the archive is not a readable tar.zst \(age\) archive: age decryption failed: '):
        archive.extract(io.BytesIO(bytes(damaged)), target, identities=[pyrage.x25519.Identity.from_str(secret)])
    assert not os.path.lexists(target)
    assert stage_threads() == []


def test_a_tree_that_cannot_be_archived_stops_the_encryption_too(tree, tmp_path):
    """The archive fails on the writing side (a FIFO in the tree) while the encryptor waits for input: the
    error must come back, not a hang, and the encryptor's thread must end."""
    os.mkfifo(os.path.join(tree, 'pipe'))
    outcome = []

    def archive_it():
        try:
            archive.write_archive(tree, io.BytesIO(), level=1, recipients=[key_pair()[1]])
        except ArchiveError as exc:
            outcome.append(str(exc))

    worker = threading.Thread(target=archive_it, name='age test worker', daemon=True)
    worker.start()
    worker.join(2)

    assert outcome == ['%s is a device or FIFO; a data directory holds none, and a restore would refuse it' % os.path.join(tree, 'pipe')], \
        'write_archive with recipients hangs when the tree cannot be archived (ThreadedWriter.abort waits for its stage forever)'
