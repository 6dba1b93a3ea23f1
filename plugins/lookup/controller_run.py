# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: controller_run
version_added: 0.2.0
short_description: This ansible-playbook run, as a record a later run can test
description:
  - Returns the controller's host name, its boot id, the process id of the running C(ansible-playbook) and
    when that process started.
  - The C(backup) and C(restore) roles keep it in the node locks, restore journals and backup sets they
    write; a later run tests it with the C(bigchaindb.rethinkdb.run_state) filter to tell a run that was
    interrupted (its process is gone) from one that still runs, and breaks what an interrupted run left.
author: bigchaindb.rethinkdb contributors (@bigchaindb)
options: {}
'''

EXAMPLES = r'''
- name: Note who runs this backup
  ansible.builtin.set_fact:
    backup_run: "{{ lookup('bigchaindb.rethinkdb.controller_run') }}"
  run_once: true
'''

RETURN = r'''
_raw:
  description: One record of the run.
  type: list
  elements: dict
  contains:
    host:
      description: The controller's host name.
      type: str
    boot_id:
      description: The controller's boot id (a run from before a reboot is gone).
      type: str
    pid:
      description: The process id of ansible-playbook.
      type: int
    start_ticks:
      description: When that process started, in clock ticks since boot (a reused pid has another).
      type: int
    described_at:
      description: When the record was made, in seconds since the epoch.
      type: float
'''

from ansible.plugins.lookup import LookupBase

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.controller_run import describe_run


class LookupModule(LookupBase):
    """The current ansible-playbook run on the controller."""

    def run(self, terms, variables=None, **kwargs):
        return [describe_run()]
