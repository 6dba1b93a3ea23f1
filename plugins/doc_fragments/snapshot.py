# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """The options that say what a coordinated snapshot captures and how, shared by snapshot and snapshot_info."""

    DOCUMENTATION = r'''
options:
  data_dir:
    description:
      - The RethinkDB server's data directory on this node. Symbolic links are resolved.
    type: path
    required: true
  set_id:
    description:
      - The backup set this snapshot belongs to, as the catalog names it (C(20261124T163000Z-snapshot-3f9a)).
      - Names the lock's owner and the snapshot, so every step of one backup gives the same value.
    type: str
  backend:
    description:
      - How to capture the data directory.
      - "V(btrfs) takes a read-only snapshot of the subvolume that holds the data directory (near instant, no
        downtime). V(lvm) takes a snapshot of its logical volume and mounts it read-only. V(zfs) takes a
        snapshot of its dataset. V(fsfreeze) freezes the filesystem, copies the data directory to another
        filesystem with C(cp -a), and thaws: writes to that filesystem wait for the whole copy. V(stopped)
        stops the server, copies the data directory, and starts the server again: consistent on any
        filesystem, with the server down for the whole copy."
      - V(lvm) and V(zfs) are tested against their exact commands only, not on real volumes.
    type: str
    choices: [btrfs, lvm, zfs, fsfreeze, stopped]
  staging_dir:
    description:
      - Where this node's snapshot or copy goes, as C(<staging_dir>/<data dir name>.snapshot-<set_id>).
      - V(btrfs) a directory on the same btrfs filesystem; V(lvm) where the snapshot is mounted; V(stopped)
        any directory with room for a full copy. These default to the directory that holds O(data_dir).
      - V(fsfreeze) requires it, on another filesystem than O(data_dir) (any write to a frozen filesystem
        blocks until the thaw, a reflink copy included), with room for a full copy.
      - Ignored by V(zfs), whose snapshots are read in the dataset's C(.zfs/snapshot) directory.
    type: path
  freeze_timeout:
    description:
      - V(fsfreeze) and V(stopped). Seconds after the capture at which a watchdog process thaws the filesystem
        (V(fsfreeze)) or starts the server (V(stopped)) if the module has not. The watchdog also acts at once
        if the module dies, however it dies. It is armed before the freeze or the stop and cancelled after.
      - The freeze or the downtime lasts the whole copy, so allow for copying the data directory at the
        staging disk's speed. A copy that outlasts it fails the snapshot, since it is then no longer consistent.
    type: float
    default: 300
  lvm_snapshot_size:
    description:
      - V(lvm) only. Room for the snapshot's copy-on-write data, as C(lvcreate) takes it. A value with C(%)
        (V(20%ORIGIN), C(50%FREE)) is passed as C(--extents), any other (C(10G)) as C(--size). Ignored for
        thin volumes, whose snapshots take no size.
    type: str
    default: 20%ORIGIN
'''
