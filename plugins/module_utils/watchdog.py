# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A dead man's switch for steps that must be undone however the module ends: a detached process that
thaws a frozen filesystem, or starts a stopped server, if the module dies or overruns."""

from __future__ import annotations

import os
import sys
import time

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.controller_run import start_ticks
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.snapshot_base import Commands, SnapshotError

CANCEL = b'cancel'

# The watchdog's program, run by a fresh interpreter (-I -S -B: no site, no environment, no bytecode written,
# so it touches no filesystem that may be frozen). It forks the watchdog into a session of its own, with no
# inherited output and / as working directory, prints its pid once it is detached, and exits. The watchdog
# ends quietly on a cancel from the control pipe; at end of file (the module died) or at the deadline
# (monotonic clock) it runs the action. Arguments: control fd, deadline, action argv.
WATCHER = """
import os, select, subprocess, sys, time
control, deadline, action = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
ready_read, ready_write = os.pipe()
if os.fork():
    os.close(ready_write)
    sys.stdout.write(os.read(ready_read, 16).decode())
    sys.exit(0)
os.setsid()
os.chdir('/')
null = os.open(os.devnull, os.O_RDWR)
for standard in (0, 1, 2):
    os.dup2(null, standard)
os.write(ready_write, str(os.getpid()).encode())
os.close(ready_write)
remaining = deadline - time.monotonic()
if remaining > 0 and select.select([control], [], [], remaining)[0] and os.read(control, 16) == b'cancel':
    sys.exit(0)
sys.exit(subprocess.call(action, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
"""


class Watchdog:
    """A detached process that runs an action (a thaw, a start of the server) at a deadline, or at once if
    the process that armed it dies, unless cancelled first. Only this process holds the write end of its
    control pipe, so its death, however sudden, closes the pipe."""

    def __init__(self, commands: Commands, action: list, seconds: float, purpose: str):
        deadline = time.monotonic() + seconds
        control_read, self._control = os.pipe()
        try:
            started = commands.run([sys.executable, '-I', '-S', '-B', '-c', WATCHER, str(control_read), repr(deadline)]
                                   + commands.resolve(action), 'start the watchdog that would %s' % purpose, pass_fds=(control_read,))
        except SnapshotError:
            os.close(self._control)
            raise
        finally:
            os.close(control_read)
        if not started.strip().isdigit():
            os.close(self._control)
            raise SnapshotError('The watchdog that would %s did not start; nothing was done.' % purpose)
        self.pid = int(started)
        self.start_ticks = start_ticks(self.pid)

    def record(self) -> dict:
        """What a lock keeps of the watchdog: its process, which a test or a person can look for."""
        return dict(pid=self.pid, start_ticks=self.start_ticks)

    def cancel(self) -> bool:
        """Tell the watchdog its action is not needed, so it exits without acting; False if it had already
        acted and ended (at its deadline)."""
        try:
            os.write(self._control, CANCEL)
            return True
        except BrokenPipeError:
            return False
        finally:
            os.close(self._control)
