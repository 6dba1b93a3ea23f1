"""bigchaindb.rethinkdb.chain_check through real ansible-playbook runs: a 3-node cluster with a password holds a
tampered BigchainDB chain (database bigchain) and a clean one (database clean); the chain is checked in a dump
archive made by the collection's dump module and live on the cluster."""

from __future__ import annotations

from rethinkdb import RethinkDB

from ansible_collections.bigchaindb.rethinkdb.tests.harness import bigchaindb_data
from ansible_collections.bigchaindb.rethinkdb.tests.integration.conftest import Ansible, write_inventory

r = RethinkDB()
PASSWORD = 'correct horse battery'
BLOCKS = 40
SEED = 3
PLAYBOOK = '''
- hosts: node1
  gather_facts: false
  module_defaults:
    group/bigchaindb.rethinkdb.rethinkdb:
      login_port: "{{ rethinkdb_driver_port }}"
      login_password_file: "{{ rethinkdb_login_password_file }}"
  tasks:
    - name: Dump both chains
      bigchaindb.rethinkdb.dump:
        dest: "{{ archive }}"
        tables: [bigchain.bigchain, bigchain.votes, clean.bigchain, clean.votes]

    - name: Check the tampered chain in the archive
      bigchaindb.rethinkdb.chain_check:
        source: archive
        archive: "{{ archive }}"
        federation: "{{ bigchaindb_federation }}"
      ignore_errors: true

    - name: Check the tampered chain on the cluster
      bigchaindb.rethinkdb.chain_check:
        source: cluster
        federation: "{{ bigchaindb_federation }}"
        workers: 2
      ignore_errors: true

    - name: Check the clean chain in the archive
      bigchaindb.rethinkdb.chain_check:
        source: archive
        archive: "{{ archive }}"
        db: clean
        federation: "{{ bigchaindb_federation }}"

    - name: Check the clean chain on the cluster in check mode
      bigchaindb.rethinkdb.chain_check:
        source: cluster
        db: clean
        federation: "{{ bigchaindb_federation }}"
      check_mode: true
'''


def load(cluster, db: str, tampering=None) -> dict:
    with cluster.connect() as connection:
        bigchaindb_data.create_schema(r, connection, db=db, replicas=3)
        return bigchaindb_data.load(r, connection, bigchaindb_data.generate(BLOCKS, seed=SEED, tampering=tampering), db=db)


def named_failures(result: dict) -> dict:
    return dict((kind, entry['ids']) for kind, entry in result['failures'].items() if entry['count'])


def test_tampering_is_found_in_a_dump_archive_and_on_the_live_cluster_and_a_clean_chain_passes(cluster_factory, tmp_path):
    cluster = cluster_factory(3, password=PASSWORD)
    tampering = bigchaindb_data.Tampering(BLOCKS, seed=SEED)
    tampered_counts = load(cluster, 'bigchain', tampering)
    clean_counts = load(cluster, 'clean')
    federation = [bigchaindb_data.Signer(SEED, 'node', index).public_key for index in range(bigchaindb_data.DEFAULT_VOTERS)]
    inventory = write_inventory(cluster, tmp_path / 'inventory.yml', bigchaindb_federation=federation)
    ansible = Ansible(tmp_path, inventory)

    run = ansible.playbook(PLAYBOOK, extra_vars={'archive': str(tmp_path / 'chains.tar.gz')})

    expected = tampering.expected_failures()
    for task, source in (('Check the tampered chain in the archive', 'archive'), ('Check the tampered chain on the cluster', 'cluster')):
        result = run.result(task)
        assert result['ok'] is False and result['source'] == source
        assert named_failures(result) == expected
        assert result['counts']['blocks'] == tampered_counts['bigchain'] and result['counts']['votes'] == tampered_counts['votes']
        assert result['msg'].startswith('The chain check found 12 failure(s): block_id 1, block_missing 1, ')
    assert run.result('Check the tampered chain on the cluster')['endpoint'] == 'localhost:%d' % cluster.node(1).driver_port
    assert run.result('Check the tampered chain on the cluster')['workers'] == 2
    for task in ('Check the clean chain in the archive', 'Check the clean chain on the cluster in check mode'):
        result = run.result(task)
        assert result['ok'] is True and result['changed'] is False and result['failure_count'] == 0
        assert result['counts']['blocks'] == clean_counts['bigchain'] and result['counts']['votes'] == clean_counts['votes']
        assert result['counts']['transactions'] == 1 + 2 * (BLOCKS - 1)
        assert sorted(result['signers']) == sorted(federation)
        assert result.get('warnings', []) == []
    assert [entry['task'] for entry in run.records if entry['status'] == 'ignored'] == [
        'Check the tampered chain in the archive', 'Check the tampered chain on the cluster']
    assert PASSWORD not in run.output
