#!/usr/bin/python
# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: info
short_description: Gather facts about a RethinkDB cluster
version_added: 0.1.0
description:
  - Reads the cluster's version, servers, databases, tables with their configuration and status, and the
    current issues, from any one server of the cluster.
  - Optionally counts the documents of each table, and waits until chosen tables are ready.
  - Never changes anything.
extends_documentation_fragment:
  - bigchaindb.rethinkdb.login
options:
  tables:
    description:
      - Tables to report, as C(database.table) names.
      - Every table of the cluster when unset.
      - A name that is not a table of the cluster is an error.
    type: list
    elements: str
  count:
    description:
      - Count the documents of each reported table. This is a full count that reads every document.
      - A table that is not ready for reads gets C(documents=null) and a warning.
    type: bool
    default: false
  wait_ready:
    description:
      - Wait until every reported table is ready in the sense of O(wait_for) before gathering.
      - Fails, naming the tables that are still not ready and their replicas' states, when
        O(wait_timeout) expires.
    type: bool
    default: false
  wait_for:
    description:
      - The readiness to wait for, as RethinkDB's C(wait) command names it.
    type: str
    choices: [ready_for_outdated_reads, ready_for_reads, ready_for_writes, all_replicas_ready]
    default: all_replicas_ready
  wait_timeout:
    description:
      - Seconds to wait in all, over all tables, when O(wait_ready=true).
    type: int
    default: 60
attributes:
  check_mode:
    support: full
    description: The module only reads; it runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to show.
  idempotent:
    support: full
    description: Reading facts changes nothing.
author:
  - bigchaindb.rethinkdb contributors (@bigchaindb)
'''

EXAMPLES = r'''
- name: Gather the cluster's facts
  bigchaindb.rethinkdb.info:
    login_port: 28015
  register: cluster

- name: Show each table's replica count
  ansible.builtin.debug:
    msg: "{{ item.key }}: {{ item.value.shards }} shard(s), {{ item.value.replicas }} replica(s)"
  loop: "{{ cluster.tables | dict2items }}"

- name: Wait until BigchainDB's tables have all their replicas ready, and count documents
  bigchaindb.rethinkdb.info:
    login_password_file: /etc/rethinkdb/admin-password
    tables:
      - bigchain.bigchain
      - bigchain.votes
    wait_ready: true
    wait_timeout: 300
    count: true
  run_once: true

- name: Connect to a remote server over TLS, and wait only until the tables take writes
  bigchaindb.rethinkdb.info:
    login_host: db1.example.org
    login_port: 28015
    login_user: admin
    login_password: "{{ lookup('ansible.builtin.file', '/etc/rethinkdb/admin-password') }}"
    tls_ca_file: /etc/rethinkdb/ca.pem
    connect_timeout: 10
    wait_ready: true
    wait_for: ready_for_writes
  delegate_to: localhost
  run_once: true
'''

RETURN = r'''
version:
  description: The RethinkDB version the servers run (of the first server, when they differ).
  returned: always
  type: str
  sample: 2.4.4
version_string:
  description: The server's full version text.
  returned: always
  type: str
  sample: rethinkdb 2.4.4~0bookworm (GCC 12.2.0)
servers:
  description: The servers connected to the cluster, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Server name.
      type: str
    id:
      description: Server UUID.
      type: str
    hostname:
      description: The host the server runs on.
      type: str
    driver_port:
      description: Client driver port.
      type: int
    cluster_port:
      description: Intracluster port.
      type: int
    tags:
      description: Server tags.
      type: list
      elements: str
    connected_to:
      description: Which other servers this one is connected to.
      type: dict
    time_started:
      description: When the server process started (ISO 8601).
      type: str
    version:
      description: The server's version text.
      type: str
  sample:
    - name: node1
      id: 0c1d2e3f-0000-4000-8000-000000000001
      hostname: db1.example.org
      driver_port: 28015
      cluster_port: 29015
      tags: [default]
      connected_to: {node2: true, node3: true}
      time_started: "2026-11-24T16:30:00.123000+00:00"
      version: rethinkdb 2.4.4~0bookworm (GCC 12.2.0)
disconnected_servers:
  description: Servers that hold replicas of a table but are not connected to the cluster.
  returned: always
  type: list
  elements: str
  sample: [node3]
databases:
  description: Database names, without the system database C(rethinkdb).
  returned: always
  type: list
  elements: str
  sample: [bigchain]
tables:
  description: The reported tables, by C(database.table) name.
  returned: always
  type: dict
  contains:
    db:
      description: Database name.
      type: str
    name:
      description: Table name.
      type: str
    id:
      description: Table UUID.
      type: str
    primary_key:
      description: The primary key field; null when the table is not available.
      type: str
    error:
      description: Why the table's configuration cannot be read (none of its replicas is reachable), else null.
      type: str
    shards:
      description: Number of shards (0 when the table is not available).
      type: int
    replicas:
      description: Replicas per shard (the smallest count over the shards; 0 when the table is not available).
      type: int
    primary_replicas:
      description: Each shard's primary replica.
      type: list
      elements: str
    indexes:
      description: Secondary index names.
      type: list
      elements: str
    ready:
      description: Whether all replicas of the table are ready.
      type: bool
    status:
      description: The four readiness flags of RethinkDB's C(table_status).
      type: dict
    documents:
      description: Document count, when O(count=true); null when the table could not be read.
      type: int
    config:
      description: The table's row of C(rethinkdb.table_config).
      type: dict
    replica_states:
      description: Every replica of every shard with its state, from C(rethinkdb.table_status).
      type: list
      elements: dict
  sample:
    bigchain.votes:
      db: bigchain
      name: votes
      id: 31c92680-f70c-4a4b-a49e-b238eb12c023
      primary_key: id
      shards: 1
      replicas: 3
      primary_replicas: [node1]
      indexes: [block_and_voter]
      ready: true
      status: {all_replicas_ready: true, ready_for_outdated_reads: true, ready_for_reads: true, ready_for_writes: true}
      documents: 3000
      replica_states: [{shard: 1, server: node1, state: ready}]
issues:
  description: The cluster's current issues (rows of C(rethinkdb.current_issues)).
  returned: always
  type: list
  elements: dict
  sample:
    - type: table_availability
      critical: false
      description: "Table `bigchain.votes` is available for outdated reads, but not up-to-date reads or writes."
      info: {db: bigchain, table: votes, shards: [], missing_servers: [node3]}
ready:
  description: Whether every reported table has all its replicas ready and the cluster reports no issues.
  returned: always
  type: bool
  sample: true
waited:
  description: Seconds spent waiting for readiness (on failure too).
  returned: always
  type: float
  sample: 0.42
not_ready:
  description:
    - On a readiness timeout (the module fails), each table that lacks the readiness, by C(database.table) name,
      with its replicas' states.
  returned: failure
  type: dict
  sample:
    bigchain.votes:
      - {shard: 1, server: node1, state: ready}
      - {shard: 1, server: node3, state: disconnected}
summary:
  description: The facts as a person reads them, one line each.
  returned: always
  type: list
  elements: str
  sample:
    - RethinkDB 2.4.4, 3 servers connected
    - "server node1 on db1: driver port 28015, cluster port 29015, tags default"
    - "table bigchain.votes: 1 shard x 3 replicas, primary node1, all replicas ready, 3,000 documents"
    - "issues: none"
'''

import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.rethinkdb import (
    close,
    query_failure,
    LOGIN_MUTUALLY_EXCLUSIVE,
    NotReadyError,
    ReqlError,
    connect,
    endpoint,
    error_text,
    replica_states,
    rethinkdb_common_argument_spec,
    split_table_name,
    system_rows,
    wait_ready,
)

STATUS_FLAGS = ('ready_for_outdated_reads', 'ready_for_reads', 'ready_for_writes', 'all_replicas_ready')
VERSION_PATTERN = re.compile(r'rethinkdb (\d+\.\d+\.\d+)')


def chosen_tables(module, table_configs: list) -> list:
    """The table_config rows of the tables the user named (all when none were named)."""
    by_name = dict(('%s.%s' % (row['db'], row['name']), row) for row in table_configs)
    if not module.params['tables']:
        return [by_name[name] for name in sorted(by_name)]
    rows = []
    for name in module.params['tables']:
        try:
            split_table_name(name)
        except ValueError as exc:
            module.fail_json(msg='tables: %s.' % exc)
        if name not in by_name:
            known = ', '.join(sorted(by_name)) or 'none'
            module.fail_json(msg='Table %s does not exist on the cluster at %s (tables: %s).' % (name, endpoint(module), known))
        rows.append(by_name[name])
    return rows


def server_facts(server_status: list, server_config: list) -> list:
    """One entry per connected server, sorted by name."""
    tags = dict((row['id'], row.get('tags', [])) for row in server_config)
    servers = []
    for row in server_status:
        network, process = row['network'], row['process']
        servers.append(dict(
            name=row['name'],
            id=row['id'],
            hostname=network['hostname'],
            driver_port=network['reql_port'],
            cluster_port=network['cluster_port'],
            tags=tags.get(row['id'], []),
            connected_to=network['connected_to'],
            time_started=process['time_started'],
            version=process['version'],
        ))
    return sorted(servers, key=lambda server: server['name'])


def table_facts(config: dict, status: dict) -> dict:
    """The summary a person reads first, with the raw config and status kept beside it.

    A table none of whose replicas is reachable has no shards in either row, and an `error` in its config.
    """
    shards = config.get('shards') or []
    flags = dict((flag, status['status'][flag]) for flag in STATUS_FLAGS)
    return dict(
        db=config['db'],
        name=config['name'],
        id=config['id'],
        primary_key=config.get('primary_key'),
        shards=len(shards),
        replicas=min(len(shard['replicas']) for shard in shards) if shards else 0,
        primary_replicas=[shard['primary_replica'] for shard in shards],
        indexes=sorted(config.get('indexes', [])),
        ready=flags['all_replicas_ready'],
        status=flags,
        error=config.get('error'),
        config=config,
        replica_states=replica_states(status),
    )


def count_documents(module, r, connection, facts: dict) -> None:
    """Add documents to each table's facts; null with a warning where the table cannot be read."""
    for name, table in facts.items():
        if not table['status']['ready_for_reads']:
            table['documents'] = None
            module.warn('Not counting %s: the table is not ready for reads.' % name)
            continue
        try:
            table['documents'] = r.db(table['db']).table(table['name']).count().run(connection)
        except ReqlError as exc:
            table['documents'] = None
            module.warn('Cannot count %s: %s.' % (name, error_text(exc)))


def gather(module, r, connection) -> dict:
    """Every fact of the cluster the module reports."""
    waited = 0.0
    tables = chosen_tables(module, system_rows(r, connection, 'table_config'))
    if module.params['wait_ready'] and tables:
        try:
            waited = wait_ready(r, connection, [(row['db'], row['name']) for row in tables], module.params['wait_for'], module.params['wait_timeout'])
        except NotReadyError as exc:
            module.fail_json(msg='%s.' % exc, not_ready=exc.waiting, waited=exc.waited)
    server_status = system_rows(r, connection, 'server_status')
    statuses = dict((row['id'], row) for row in system_rows(r, connection, 'table_status'))
    facts = dict(('%s.%s' % (row['db'], row['name']), table_facts(row, statuses[row['id']])) for row in tables if row['id'] in statuses)
    if module.params['count']:
        count_documents(module, r, connection, facts)
    issues = system_rows(r, connection, 'current_issues')
    connected = set(row['name'] for row in server_status)
    disconnected = set(state['server'] for table in facts.values() for state in table['replica_states'] if state['server'] not in connected)
    version_string = server_status[0]['process']['version'] if server_status else ''
    version = VERSION_PATTERN.search(version_string)
    result = dict(
        version=version.group(1) if version else version_string,
        version_string=version_string,
        servers=server_facts(server_status, system_rows(r, connection, 'server_config')),
        disconnected_servers=sorted(disconnected),
        databases=sorted(name for name in r.db_list().run(connection) if name != 'rethinkdb'),
        tables=facts,
        issues=issues,
        ready=not issues and all(table['ready'] for table in facts.values()),
        waited=waited,
    )
    result['summary'] = summary_lines(result)
    return result


def summary_lines(facts: dict) -> list:
    """The facts as a person reads them: servers, tables, issues, one line each."""
    servers = facts['servers']
    lines = ['RethinkDB %s, %d server%s connected%s' % (
        facts['version'], len(servers), '' if len(servers) == 1 else 's',
        ', %s disconnected' % ', '.join(facts['disconnected_servers']) if facts['disconnected_servers'] else '')]
    for server in servers:
        lines.append('server %s on %s: driver port %d, cluster port %d, tags %s' % (
            server['name'], server['hostname'], server['driver_port'], server['cluster_port'], ', '.join(server['tags']) or 'none'))
    for name, table in sorted(facts['tables'].items()):
        documents = '' if table.get('documents', False) is False else ', %s documents' % (
            'unknown' if table['documents'] is None else format(table['documents'], ','))
        if table['error']:
            lines.append('table %s: unavailable (%s)' % (name, table['error']))
            continue
        lines.append('table %s: %d shard%s x %d replica%s, primary %s, %s%s' % (
            name, table['shards'], '' if table['shards'] == 1 else 's', table['replicas'], '' if table['replicas'] == 1 else 's',
            ', '.join(table['primary_replicas']), 'all replicas ready' if table['ready'] else 'NOT all replicas ready', documents))
    lines.append('issues: %s' % ('; '.join(issue['description'] for issue in facts['issues']) if facts['issues'] else 'none'))
    return lines


def main():
    argument_spec = rethinkdb_common_argument_spec()
    argument_spec.update(
        tables=dict(type='list', elements='str'),
        count=dict(type='bool', default=False),
        wait_ready=dict(type='bool', default=False),
        wait_for=dict(type='str', default='all_replicas_ready', choices=list(STATUS_FLAGS)),
        wait_timeout=dict(type='int', default=60),
    )
    module = AnsibleModule(argument_spec=argument_spec, mutually_exclusive=LOGIN_MUTUALLY_EXCLUSIVE, supports_check_mode=True)
    if module.params['wait_timeout'] < 1:
        module.fail_json(msg='wait_timeout must be at least 1 second, got %d.' % module.params['wait_timeout'])
    r, connection = connect(module)
    try:
        facts = gather(module, r, connection)
    except ReqlError as exc:
        module.fail_json(msg=query_failure(module, 'Reading the cluster', exc))
    finally:
        close(connection)
    module.exit_json(changed=False, **facts)


if __name__ == '__main__':
    main()
