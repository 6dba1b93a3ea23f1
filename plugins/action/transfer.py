# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Moves a backup part between the controller and a node through the connection's own file transfer (sftp
or scp over SSH), streamed, without privilege escalation and without the checksum passes of fetch and copy:
the part is hashed once where it arrives on the controller, and on a node by the module that unpacks it.

Over the ssh connection the part crosses on an SSH connection of its own, without compression: Ansible's
default ssh_args ask for zlib compression (-C) on a shared ControlMaster connection, which holds a transfer of
an already compressed or encrypted part to about a sixth of what sftp does without it."""

from __future__ import annotations

import os
import shlex

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.files import fsync_dir, sha256_file

WRITING_SUFFIX = '.writing'
# ssh options that would send the part compressed, or through a ControlMaster connection made with compression.
SHARED_OR_COMPRESSED = ('compression', 'controlmaster', 'controlpersist', 'controlpath')


def uncompressed_ssh_args(ssh_args: str) -> str:
    """ssh_args without -C and without the options of a shared (ControlMaster) connection."""
    kept, words = [], shlex.split(ssh_args or '')
    while words:
        word = words.pop(0)
        if word == '-C':
            continue
        if word == '-o' and words:
            option = words.pop(0)
            if option.split('=', 1)[0].split(None, 1)[0].lower() not in SHARED_OR_COMPRESSED:
                kept += [word, option]
            continue
        if word.startswith('-o') and word[2:].split('=', 1)[0].split(None, 1)[0].lower() in SHARED_OR_COMPRESSED:
            continue
        kept.append(word)
    return shlex.join(kept)


class ActionModule(ActionBase):
    """bigchaindb.rethinkdb.transfer: direction fetch (node to controller, checked) or put (controller to node)."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(('src', 'dest', 'direction', 'sha256', 'bytes'))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        missing = [name for name in ('src', 'dest', 'direction') if not args.get(name)]
        if missing:
            return dict(result, failed=True, msg='transfer needs %s.' % ', '.join(missing))
        if args['direction'] not in ('fetch', 'put'):
            return dict(result, failed=True, msg="direction must be fetch or put, not %r." % args['direction'])
        if args['direction'] == 'fetch' and not args.get('sha256'):
            return dict(result, failed=True, msg='direction fetch needs sha256, the part as the node wrote it.')
        src, dest = args['src'], args['dest']
        if not os.path.isabs(src) or not os.path.isabs(dest):
            return dict(result, failed=True, msg='src and dest must be absolute paths.')
        if self._task.check_mode:
            return dict(result, changed=True, msg='Would %s %s to %s.' % (args['direction'], src, dest))
        ssh_args = self._connection.get_option('ssh_args') if self._connection.transport == 'ssh' else None
        try:
            if ssh_args is not None:
                self._connection.set_option('ssh_args', uncompressed_ssh_args(ssh_args))
            if args['direction'] == 'fetch':
                return dict(result, **self._fetch(src, dest, args['sha256'].lower(), args.get('bytes')))
            self._connection.put_file(src, dest)
        except (AnsibleError, OSError, ValueError) as exc:
            return dict(result, failed=True, msg='Cannot %s %s to %s: %s.' % (args['direction'], src, dest, str(exc).strip().splitlines()[0]))
        finally:
            if ssh_args is not None:
                self._connection.set_option('ssh_args', ssh_args)
        return dict(result, changed=True, src=src, dest=dest)

    def _fetch(self, src: str, dest: str, sha256: str, size) -> dict:
        """Fetch into `<dest>.writing`, hash it once, and rename it into place only if it is what the node wrote."""
        if os.path.isfile(dest) and size is not None and os.path.getsize(dest) == int(size):
            return dict(changed=False, src=src, dest=dest, msg='%s is already in place.' % dest)
        directory = os.path.dirname(dest)
        os.makedirs(directory, 0o700, exist_ok=True)
        writing = dest + WRITING_SUFFIX
        self._connection.fetch_file(src, writing)
        digest, received = sha256_file(writing)
        if digest != sha256:
            os.unlink(writing)
            return dict(failed=True, msg='%s arrived as %d bytes with sha256 %s, but the node wrote sha256 %s: the transfer damaged '
                                         'it; run the backup again.' % (src, received, digest, sha256))
        os.chmod(writing, 0o600)
        os.rename(writing, dest)
        fsync_dir(directory)
        return dict(changed=True, src=src, dest=dest, bytes=received, sha256=digest)
