# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""stopped backend: stop the server, copy its data directory, start it again. Consistent on any
filesystem, at the price of the server's downtime for the whole copy. A watchdog starts the server if the
module dies while it is down, or if the copy outlasts freeze_timeout."""

from __future__ import annotations

import os
import time

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.fault_points import checkpoint
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.server_control import require_server_commands
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import (
    Backend, SnapshotError, copy_path, copy_tree, remove_copy)
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.watchdog import Watchdog


class StoppedSnapshot(Backend):
    """Stops the server (its unit or stop command), `cp -a` into staging_dir (default: beside the data
    directory), then starts it, whatever happened in between."""

    name = 'stopped'
    tools = ('cp',)
    copies = True

    @classmethod
    def make_plan(cls, data_dir, set_id, options, commands):
        server = require_server_commands(options)
        staging_dir = options.get('staging_dir') or os.path.dirname(data_dir)
        if not os.path.isdir(staging_dir):
            raise SnapshotError('staging_dir %s is not a directory.' % staging_dir)
        copy = copy_path(staging_dir, data_dir, set_id)
        return dict(data_dir=data_dir, copy=copy, read_path=copy, stop_command=server['stop'], start_command=server['start'],
                    freeze_timeout=options['freeze_timeout'])

    def problems(self):
        server_tools = sorted(set([self.plan['stop_command'][0], self.plan['start_command'][0]]))
        return super().problems() + ['The %s command is not installed on this node.' % tool for tool in self.commands.missing(server_tools)]

    def take(self, progress):
        watchdog = Watchdog(self.commands, self.plan['start_command'], self.plan['freeze_timeout'], 'start the server')
        progress(server_stopped=True, watchdog=watchdog.record())
        stopped_at = time.monotonic()
        taken_at = None
        failure = None
        try:
            self.commands.run(self.plan['stop_command'], 'stop the server')
            checkpoint('snapshot:server_stopped')
            taken_at = time.time()
            copy_tree(self.commands, self.plan['data_dir'], self.plan['copy'])
        except SnapshotError as exc:
            failure = exc
        try:
            self.commands.run(self.plan['start_command'], 'start the server')
        except SnapshotError as exc:
            if failure is not None:
                raise SnapshotError('%s (before that: %s)' % (exc, failure), **exc.details)
            raise
        finally:
            overran = not watchdog.cancel()
        if overran:
            raise SnapshotError('The server was down for longer than freeze_timeout (%ss): the watchdog started it during the '
                                'copy, so the copy is not consistent. Raise freeze_timeout.' % self.plan['freeze_timeout'])
        progress(server_stopped=False)
        if failure is not None:
            raise failure
        return dict(taken_at=taken_at, freeze_ms=round((time.monotonic() - stopped_at) * 1000, 3))

    def release(self, state, dry_run=False):
        """A server this set stopped was started by its watchdog as soon as the module that stopped it ended
        (a lock without a watchdog, of an earlier version, has its server started here)."""
        done = []
        if state.get('server_stopped') and not state.get('watchdog'):
            done.append('start the server (%s)' % ' '.join(self.plan['start_command']))
            if not dry_run:
                self.commands.run(self.plan['start_command'], 'start the server')
        return done + remove_copy(self.plan['copy'], dry_run)
