"""The collection as users get it: built with ansible-galaxy, holding the collection, its docs and tests only,
installed, documented and run; its requirements read by ansible-builder for an execution environment."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from ansible_collections.bigchaindb.rethinkdb.tests.integration.conftest import REPO, Ansible

BIN = Path(sys.executable).parent
TOP_LEVEL = ['CHANGELOG.rst', 'COPYING', 'FILES.json', 'MANIFEST.json', 'README.md', 'bindep.txt', 'changelogs', 'docs', 'meta',
             'playbooks', 'plugins', 'requirements.txt', 'roles', 'tests']
# Development tools around the collection, never in the artifact.
LEFT_OUT = ('bench/', 'demo/', 'tools/', 'tests/reql_server/', '.venv/', '.build/', '.ci/', '__pycache__/', '.ansible-lint', 'Makefile',
            'constraints.txt', 'requirements-test.txt')


def galaxy(*args: str) -> subprocess.CompletedProcess:
    """Run ansible-galaxy from this environment."""
    return subprocess.run([str(BIN / 'ansible-galaxy')] + list(args), cwd=REPO, capture_output=True, text=True, check=True)


@pytest.fixture(name='artifact', scope='module')
def fixture_artifact(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp('dist')
    galaxy('collection', 'build', '--force', '--output-path', str(dist))
    [artifact] = dist.glob('bigchaindb-rethinkdb-*.tar.gz')
    return artifact


def test_the_artifact_holds_the_collection_its_docs_and_tests_only(artifact):
    with tarfile.open(artifact) as archive:
        names = archive.getnames()

    assert sorted(set(name.split('/')[0] for name in names)) == TOP_LEVEL
    assert [name for name in names if any(name.startswith(prefix) or '/' + prefix in name or name == prefix.rstrip('/')
                                          for prefix in LEFT_OUT)] == []
    assert 'plugins/modules/catalog_info.py' in names and 'meta/execution-environment.yml' in names
    assert 'tests/unit/plugins/modules/test_catalog.py' in names


def test_the_built_artifact_installs_documents_itself_and_runs(artifact, cluster_factory, tmp_path):
    galaxy('collection', 'install', '--force', '-p', str(tmp_path / 'installed'), str(artifact))
    installed = tmp_path / 'installed'
    docs = subprocess.run([str(BIN / 'ansible-doc'), 'bigchaindb.rethinkdb.replicas'],
                          env={'ANSIBLE_COLLECTIONS_PATH': str(installed), 'PATH': '/usr/bin:/bin'}, capture_output=True, text=True, check=True)
    cluster = cluster_factory(1)
    inventory = cluster.inventory()
    inventory['all']['children']['rethinkdb']['vars'] = dict(rethinkdb_backup_repository=str(tmp_path / 'backups'))
    (tmp_path / 'inventory.yml').write_text(yaml.safe_dump(inventory))
    ansible = Ansible(tmp_path, tmp_path / 'inventory.yml', collections_path=installed)

    run = ansible.playbook('bigchaindb.rethinkdb.verify')

    assert str(installed / 'ansible_collections' / 'bigchaindb' / 'rethinkdb' / 'plugins' / 'modules' / 'replicas.py') in docs.stdout
    assert 'nonvoting_replica_tags' in docs.stdout
    assert run.result('Show the cluster')['msg'][0] == 'RethinkDB %s, 1 server connected' % run.result(
        "Read the cluster's facts, waiting until its tables are ready")['version']


def test_ansible_builder_reads_the_requirements_for_an_execution_environment(artifact, tmp_path):
    """ansible-builder finds the collection's Python and system requirements (meta/execution-environment.yml),
    and makes a build context from a definition that installs the collection; no image is built."""
    galaxy('collection', 'install', '--force', '-p', str(tmp_path / 'installed'), str(artifact))
    introspected = subprocess.run([str(BIN / 'ansible-builder'), 'introspect', '--sanitize', str(tmp_path / 'installed')],
                                  capture_output=True, text=True, check=True)
    definition = tmp_path / 'execution-environment.yml'
    definition.write_text(yaml.safe_dump(dict(version=3, dependencies=dict(
        ansible_core=dict(package_pip='ansible-core'), ansible_runner=dict(package_pip='ansible-runner'),
        galaxy=dict(collections=[dict(name=str(artifact), type='file')])))))
    created = subprocess.run([str(BIN / 'ansible-builder'), 'create', '-f', str(definition), '-c', str(tmp_path / 'context')],
                             capture_output=True, text=True, check=True)

    requirements = yaml.safe_load(introspected.stdout)
    python = [line.split('  #')[0] for line in requirements['python']]
    system = [line.split(' [')[0] for line in requirements['system']]
    assert python == [line for line in (REPO / 'requirements.txt').read_text().splitlines() if line and not line.startswith('#')]
    assert system == ['zstd', 'btrfs-progs', 'xfsprogs', 'util-linux']
    assert 'Complete!' in created.stdout
    assert str(artifact) in (tmp_path / 'context' / '_build' / 'requirements.yml').read_text()
