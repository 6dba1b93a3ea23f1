# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Client-side encryption of backup parts with age (X25519 recipients), through pyrage, a maintained
binding of the rage implementation: nothing here is hand-written cryptography.

Parts are encrypted to public keys while they stream, so a node or a storage provider holds nothing that
decrypts an old backup; the identity (private key) is needed only where a restore runs.
"""

from __future__ import annotations

import re
import traceback

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.streams import ThreadedReader, ThreadedWriter

try:
    import pyrage
except ImportError:
    PYRAGE_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    PYRAGE_IMPORT_ERROR = None

RECIPIENT_RE = re.compile(r'age1[02-9ac-hj-np-z]{58}')
IDENTITY_PREFIX = 'AGE-SECRET-KEY-1'


class EncryptionError(Exception):
    """Keys that cannot be used, or a part that does not decrypt; the message never holds a private key."""


def _require_pyrage() -> None:
    if PYRAGE_IMPORT_ERROR is not None:
        raise EncryptionError('the Python library pyrage is required for encrypted backups')


def parse_recipients(texts: list) -> list:
    """age X25519 recipients (age1...) from their text; EncryptionError naming the first that is not one."""
    _require_pyrage()
    recipients = []
    for text in texts:
        if not isinstance(text, str) or not RECIPIENT_RE.fullmatch(text.strip()):
            raise EncryptionError('%r is not an age X25519 recipient (a public key like age1...): give the output of '
                                  'age-keygen -y' % (text,))
        recipients.append(pyrage.x25519.Recipient.from_str(text.strip()))
    return recipients


def read_identities(path: str) -> list:
    """The age X25519 identities of an identity file (age-keygen's format: comments and one key a line)."""
    _require_pyrage()
    try:
        with open(path, encoding='utf-8') as stream:
            lines = [line.strip() for line in stream]
    except OSError as exc:
        raise EncryptionError('cannot read the identity file %s: %s' % (path, exc.strerror)) from None
    identities = []
    for number, line in enumerate(lines, 1):
        if not line or line.startswith('#'):
            continue
        if not line.startswith(IDENTITY_PREFIX):
            raise EncryptionError('line %d of %s is not an age X25519 identity (AGE-SECRET-KEY-1...)' % (number, path))
        try:
            identities.append(pyrage.x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise EncryptionError('line %d of %s is not a valid age identity' % (number, path)) from None
    if not identities:
        raise EncryptionError('the identity file %s holds no age identity' % path)
    return identities


def check_identities(identities: list, recipients: list, what: str) -> None:
    """Refuse, before anything is read or stopped, identities of which none matches a recipient the part
    was encrypted to."""
    public = set(str(identity.to_public()) for identity in identities)
    if not public & set(recipients):
        raise EncryptionError('%s is encrypted to %s, and the identity file holds the key(s) of %s: give the identity '
                              'of one of its recipients' % (what, ', '.join(recipients), ', '.join(sorted(public))))


def encrypting(sink, recipients: list) -> ThreadedWriter:
    """A writer that encrypts what it is given to recipients (age1... texts) into sink; close() finishes it."""
    keys = parse_recipients(recipients)
    return ThreadedWriter(lambda plain, out: pyrage.encrypt_io(plain, out, keys), sink, 'age encryption')


def decrypting(source, identities: list) -> ThreadedReader:
    """A reader of the plaintext of an age stream read from source."""
    _require_pyrage()
    return ThreadedReader(lambda encrypted, out: pyrage.decrypt_io(encrypted, out, identities), source, 'age decryption')
