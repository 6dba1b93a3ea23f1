# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Named points inside the modules where the tests stop a run, to prove that what the collection promises
holds whenever the controller dies (docs/faults.md).

With BIGCHAINDB_RETHINKDB_PAUSE_AT naming a point (`<module>:<step>`, several separated by commas) in the
module's environment, the module writes its pid and the point to the file BIGCHAINDB_RETHINKDB_PAUSE_FILE
when it reaches that point and then waits there until it is killed, so that a test kills the controller at
exactly that step. Without the variable a checkpoint does nothing.
"""

from __future__ import annotations

import os
import time

PAUSE_AT = 'BIGCHAINDB_RETHINKDB_PAUSE_AT'
PAUSE_FILE = 'BIGCHAINDB_RETHINKDB_PAUSE_FILE'


def checkpoint(point: str) -> None:
    """Pause here forever when a test asked to stop the run at this point."""
    if point not in os.environ.get(PAUSE_AT, '').split(','):
        return
    with open(os.environ[PAUSE_FILE], 'a', encoding='utf-8') as note:
        note.write('%d %s\n' % (os.getpid(), point))
    while True:
        time.sleep(60)
