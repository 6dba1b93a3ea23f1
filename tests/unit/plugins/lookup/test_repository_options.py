"""Unit tests of the repository_options lookup: a host's rethinkdb_backup_* variables to the modules' options."""

from __future__ import annotations

from ansible_collections.bigchaindb.rethinkdb.plugins.lookup.repository_options import LookupModule
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.lookup.test_login_options import Templar


def repository_options(variables: dict) -> dict:
    [options] = LookupModule(templar=Templar()).run([], variables=variables)
    return options


def test_the_default_repository_for_a_host_without_variables():
    assert repository_options({}) == {'repository': '/var/backups/rethinkdb'}
    assert repository_options(None) == {'repository': '/var/backups/rethinkdb'}


def test_the_repository_variable_wins_over_the_older_root_variable():
    assert repository_options({'rethinkdb_backup_root': '/srv/old'}) == {'repository': ('templated', '/srv/old')}
    assert repository_options({'rethinkdb_backup_root': '/srv/old', 'rethinkdb_backup_repository': 's3://b/p'}) == {
        'repository': ('templated', 's3://b/p')}


def test_every_s3_variable_maps_to_its_option_and_unset_ones_are_left_out():
    options = repository_options({
        'rethinkdb_backup_repository': 's3://backups/rethinkdb', 'rethinkdb_backup_s3_endpoint_url': 'https://minio:9000',
        'rethinkdb_backup_s3_region': 'eu-1', 'rethinkdb_backup_s3_profile': 'backup',
        'rethinkdb_backup_s3_credentials_file': '/etc/rethinkdb/s3', 'rethinkdb_backup_s3_ca_bundle': '/etc/ssl/minio.pem',
        'rethinkdb_backup_keep_last': 7,
    })

    assert options == {'repository': ('templated', 's3://backups/rethinkdb'), 's3_endpoint_url': ('templated', 'https://minio:9000'),
                       's3_region': ('templated', 'eu-1'), 's3_profile': ('templated', 'backup'),
                       's3_credentials_file': ('templated', '/etc/rethinkdb/s3'), 's3_ca_bundle': ('templated', '/etc/ssl/minio.pem')}
    assert repository_options({'rethinkdb_backup_s3_region': 'eu-1'}) == {'repository': '/var/backups/rethinkdb',
                                                                          's3_region': ('templated', 'eu-1')}
