#!/usr/bin/python
# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: data_restore_info
short_description: Read a node's restore journal
version_added: 0.2.0
description:
  - Reads the journal that M(bigchaindb.rethinkdb.data_restore) keeps of the node's latest file-level
    restore, C(<data_dir>.restore-journal.json), and says whether that restore is unfinished; changes nothing.
  - The C(restore) role reads every node's journal first, to finish an interrupted restore of the same set
    (with its restore id), to roll it back, or to refuse a restore of another set until then.
options:
  data_dir:
    description:
      - The RethinkDB server's data directory on this node. Symbolic links are resolved.
    type: path
    required: true
attributes:
  check_mode:
    support: full
    description: The module only reads; it runs the same in check mode.
  diff_mode:
    support: none
    description: The module changes nothing.
  idempotent:
    support: full
    description: The module changes nothing.
seealso:
  - module: bigchaindb.rethinkdb.data_restore
author:
  - bigchaindb.rethinkdb contributors (@bigchaindb)
'''

EXAMPLES = r'''
- name: Read each node's restore journal
  bigchaindb.rethinkdb.data_restore_info:
    data_dir: /var/lib/rethinkdb/default
  register: journals

- name: Say which nodes have an unfinished restore
  ansible.builtin.debug:
    msg: "{{ journals.journal.restore_id }} of {{ journals.journal.set_id }} is {{ journals.journal.phase }}"
  when: journals.unfinished
'''

RETURN = r'''
journal:
  description: The journal of the node's latest restore (restore id, set, phase and its history, the
    directories it names), or null when the node has none.
  returned: always
  type: dict
  sample: {"restore_id": "20261202T051500Z-a1b2", "set_id": "20261124T163000Z-snapshot-3f9a", "phase": "swapping",
           "history": [{"phase": "staging", "at": "2026-12-02T05:15:01.000Z"}]}
unfinished:
  description: Whether that restore is unfinished (not finished and not rolled back).
  returned: always
  type: bool
  sample: true
journal_file:
  description: Where the journal is.
  returned: always
  type: str
  sample: /var/lib/rethinkdb/default.restore-journal.json
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.restore_journal import Journal, JournalError, is_unfinished


def main():
    module = AnsibleModule(argument_spec=dict(data_dir=dict(type='path', required=True)), supports_check_mode=True)
    journal = Journal(os.path.realpath(module.params['data_dir']))
    try:
        record = journal.read()
    except JournalError as exc:
        module.fail_json(msg=str(exc), journal_file=journal.path)
    module.exit_json(changed=False, journal=record, unfinished=is_unfinished(record), journal_file=journal.path)


if __name__ == '__main__':
    main()
