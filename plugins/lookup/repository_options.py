# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: repository_options
version_added: 0.2.0
short_description: The backup repository options of a cluster, from its inventory variables
description:
  - Returns the repository options of the collection's modules (C(repository), C(s3_endpoint_url),
    C(s3_region), C(s3_profile), C(s3_credentials_file), C(s3_ca_bundle)) from the variables
    C(rethinkdb_backup_repository) (default C(rethinkdb_backup_root), a directory on the controller, else
    C(/var/backups/rethinkdb)), C(rethinkdb_backup_s3_endpoint_url), C(rethinkdb_backup_s3_region),
    C(rethinkdb_backup_s3_profile), C(rethinkdb_backup_s3_credentials_file) and
    C(rethinkdb_backup_s3_ca_bundle) of the host the task runs for; unset variables are left out.
  - The collection's roles set it, with the cluster's name, as the C(module_defaults) of the action group
    C(bigchaindb.rethinkdb.repository).
author: bigchaindb.rethinkdb contributors (@bigchaindb)
options: {}
'''

EXAMPLES = r'''
- name: List the backup sets of the cluster this node belongs to
  module_defaults:
    group/bigchaindb.rethinkdb.repository: "{{ lookup('bigchaindb.rethinkdb.repository_options') | combine({'cluster': 'rethinkdb'}) }}"
  bigchaindb.rethinkdb.catalog_info:
  delegate_to: localhost
  run_once: true
'''

RETURN = r'''
_raw:
  description: One mapping of module option to value.
  type: list
  elements: dict
'''

from ansible.plugins.lookup import LookupBase

DEFAULT_REPOSITORY = '/var/backups/rethinkdb'
# Module option -> inventory variable.
S3_VARIABLES = {
    's3_endpoint_url': 'rethinkdb_backup_s3_endpoint_url',
    's3_region': 'rethinkdb_backup_s3_region',
    's3_profile': 'rethinkdb_backup_s3_profile',
    's3_credentials_file': 'rethinkdb_backup_s3_credentials_file',
    's3_ca_bundle': 'rethinkdb_backup_s3_ca_bundle',
}


class LookupModule(LookupBase):
    """Maps a host's rethinkdb_backup_* variables to the modules' repository options, in one place."""

    def run(self, terms, variables=None, **kwargs):
        variables = variables or {}
        for name in ('rethinkdb_backup_repository', 'rethinkdb_backup_root'):
            if name in variables:
                repository = self._templar.template(variables[name])
                break
        else:
            repository = DEFAULT_REPOSITORY
        options = dict(repository=repository)
        for option, name in S3_VARIABLES.items():
            if name in variables:
                options[option] = self._templar.template(variables[name])
        return [options]
