# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: pause
type: aggregate
short_description: Stop ansible-playbook just before a named task, for the fault tests to kill it there
description:
  - With E(PAUSE_BEFORE_TASK) naming a task, when that task is about to start (every host has finished the
    tasks before it), writes ansible-playbook's pid to E(PAUSE_NOTE) and stops the process (SIGSTOP), so
    that a test ends the run at exactly that point, the way a controller that dies there would.
options: {}
'''

import os
import signal

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    """Stops the run before a named task."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'pause'
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_task_start(self, task, is_conditional):
        target = os.environ.get('PAUSE_BEFORE_TASK')
        if not target or task.get_name().split(' : ')[-1] != target:
            return
        with open(os.environ['PAUSE_NOTE'], 'a', encoding='utf-8') as note:
            note.write('%d before %s\n' % (os.getpid(), target))
        os.kill(os.getpid(), signal.SIGSTOP)
