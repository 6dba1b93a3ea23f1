#!/usr/bin/python
# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: transfer
short_description: Move a backup part between the controller and a node, streamed, hashed once
version_added: 0.2.0
description:
  - Moves one file between the controller and a node through the connection's own file transfer (sftp or
    scp over SSH), streamed with bounded memory on both ends.
  - It never escalates privileges. Under C(become), M(ansible.builtin.fetch) does not stream (it reads the
    file through the slurp module, whole, into the controller's memory), and fetch and
    M(ansible.builtin.copy) read a file several times for their checksums; the C(backup) and C(restore)
    roles use this action instead, with the node's end in a directory owned by the login user (the
    modules run with C(become) give what they write to that directory's owner).
  - Over the C(ssh) connection the file crosses on an SSH connection of its own, without compression, with the
    connection's C(ssh_args) less C(-C), C(ControlMaster), C(ControlPersist) and C(ControlPath), for this task
    only. Ansible's default C(ssh_args) ask for zlib compression on a shared connection, which holds the
    transfer of a part (compressed or encrypted already) to about a sixth of the speed of sftp without it.
    Options in C(ssh_common_args) and C(sftp_extra_args) are kept as they are.
  - V(fetch) writes C(<dest>.writing) on the controller, hashes it once, and renames it to O(dest) only when
    its sha256 is O(sha256); otherwise it removes it and fails.
  - V(put) sends O(src) to the node; the module that reads it there checks it (M(bigchaindb.rethinkdb.data_restore)
    and M(bigchaindb.rethinkdb.restore) check the sha256 in the pass that unpacks or loads it).
options:
  direction:
    description:
      - V(fetch) from the node to the controller, V(put) from the controller to the node.
    type: str
    choices: [fetch, put]
    required: true
  src:
    description:
      - The file to send, on the node for V(fetch), on the controller for V(put). Absolute.
    type: path
    required: true
  dest:
    description:
      - Where it goes, on the controller for V(fetch) (its directory is created, mode 0700), on the node for
        V(put) (in a directory the login user may write). Absolute.
    type: path
    required: true
  sha256:
    description:
      - For V(fetch), the sha256 the node computed while it wrote the file. Required for V(fetch).
    type: str
  bytes:
    description:
      - For V(fetch), the file's size; when O(dest) already has it, the file is taken as fetched (no change).
    type: int
attributes:
  action:
    support: full
    description: An action plugin, run on the controller; it moves the file through the connection.
  async:
    support: none
    description: The transfer runs in the task itself.
  become:
    support: none
    description: The transfer always runs as the login user, whatever C(become) says.
  check_mode:
    support: full
    description: Says what it would move, and moves nothing.
  diff_mode:
    support: none
    description: The file is binary; no diff.
  platform:
    support: full
    platforms: posix
    description: Nodes reached over any connection with put and fetch of files (ssh, local).
  idempotent:
    support: partial
    description: V(fetch) of a file already in place with O(bytes) reports no change; V(put) always sends.
author:
  - bigchaindb.rethinkdb contributors (@bigchaindb)
'''

EXAMPLES = r'''
- name: Fetch a node's archive into the set, checked on arrival
  bigchaindb.rethinkdb.transfer:
    direction: fetch
    src: /var/tmp/rethinkdb-backup/node1/20261124T163000Z-snapshot-3f9a/data.tar.zst
    dest: /var/backups/rethinkdb/rethinkdb/20261124T163000Z-snapshot-3f9a.partial/nodes/node1/data.tar.zst
    sha256: "{{ archived.part.sha256 }}"
    bytes: "{{ archived.part.bytes }}"

- name: Hand a part to a node for its restore
  bigchaindb.rethinkdb.transfer:
    direction: put
    src: /var/backups/rethinkdb/rethinkdb/20261124T163000Z-snapshot-3f9a/nodes/node1/data.tar.zst
    dest: /var/tmp/rethinkdb-backup/node1/restore/data.tar.zst
'''

RETURN = r'''
src:
  description: The file sent.
  returned: success
  type: str
  sample: /var/tmp/rethinkdb-backup/node1/20261124T163000Z-snapshot-3f9a/data.tar.zst
dest:
  description: Where it went.
  returned: success
  type: str
  sample: /var/backups/rethinkdb/rethinkdb/20261124T163000Z-snapshot-3f9a.partial/nodes/node1/data.tar.zst
bytes:
  description: For V(fetch), the size received.
  returned: when direction is fetch and the file was fetched
  type: int
  sample: 381022
sha256:
  description: For V(fetch), the sha256 of what was received.
  returned: when direction is fetch and the file was fetched
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
'''
