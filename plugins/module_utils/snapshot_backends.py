# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The snapshot backends by name, and the options that choose and configure one (snapshot, snapshot_info)."""

from __future__ import annotations

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.server_control import server_argument_spec
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import SBIN_DIRS, Backend, Commands
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_btrfs import BtrfsSnapshot
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_fsfreeze import FsfreezeSnapshot
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_lvm import LvmSnapshot
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_stopped import StoppedSnapshot
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_zfs import ZfsSnapshot

BACKENDS = dict((backend.name, backend) for backend in (BtrfsSnapshot, LvmSnapshot, ZfsSnapshot, FsfreezeSnapshot, StoppedSnapshot))


def snapshot_argument_spec() -> dict:
    """The options of what a snapshot captures and how, with how the server is stopped and started."""
    spec = dict(
        data_dir=dict(type='path', required=True),
        set_id=dict(type='str'),
        backend=dict(type='str', choices=sorted(BACKENDS)),
        staging_dir=dict(type='path'),
        freeze_timeout=dict(type='float', default=300),
        lvm_snapshot_size=dict(type='str', default='20%ORIGIN'),
    )
    spec.update(server_argument_spec())
    return spec


def module_commands(module) -> Commands:
    """The command runner of a module: its run_command, and its get_bin_path (which also looks in sbin)."""
    return Commands(module.run_command, lambda tool: module.get_bin_path(tool, opt_dirs=list(SBIN_DIRS)))


def planned_backend(params: dict, data_dir: str, commands: Commands) -> Backend:
    """The backend chosen for data_dir with its plan, or SnapshotError saying why it cannot serve."""
    backend_class = BACKENDS[params['backend']]
    plan = backend_class.make_plan(data_dir, params['set_id'], params, commands)
    return backend_class(plan, commands)


def backend_of(state: dict, commands: Commands) -> Backend:
    """The backend that took the snapshot a lock records, with its plan."""
    return BACKENDS[state['backend']](state['plan'], commands)
