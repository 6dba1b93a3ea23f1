"""The collection as users get it: built with ansible-galaxy, installed, documented and run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import REPO, Ansible


def galaxy(*args: str) -> subprocess.CompletedProcess:
    """Run ansible-galaxy from this environment."""
    return subprocess.run([str(Path(sys.executable).parent / 'ansible-galaxy')] + list(args), cwd=REPO, capture_output=True, text=True, check=True)


def test_the_built_artifact_installs_documents_itself_and_runs(cluster_factory, tmp_path):
    galaxy('collection', 'build', '--force', '--output-path', str(tmp_path / 'dist'))
    [artifact] = (tmp_path / 'dist').glob('bigchaindb-rethinkdb-*.tar.gz')
    galaxy('collection', 'install', '--force', '-p', str(tmp_path / 'installed'), str(artifact))
    installed = tmp_path / 'installed'
    docs = subprocess.run([str(Path(sys.executable).parent / 'ansible-doc'), 'bigchaindb.rethinkdb.replicas'],
                          env={'ANSIBLE_COLLECTIONS_PATH': str(installed), 'PATH': '/usr/bin:/bin'}, capture_output=True, text=True, check=True)
    cluster = cluster_factory(1)
    ansible = Ansible(tmp_path, cluster.write_inventory(tmp_path / 'inventory.yml'), collections_path=installed)

    run = ansible.playbook('bigchaindb.rethinkdb.verify')

    assert str(installed / 'ansible_collections' / 'bigchaindb' / 'rethinkdb' / 'plugins' / 'modules' / 'replicas.py') in docs.stdout
    assert 'nonvoting_replica_tags' in docs.stdout
    assert not (installed / 'ansible_collections' / 'bigchaindb' / 'rethinkdb' / '.venv').exists()
    assert run.result('Show the cluster')['msg'][0] == 'RethinkDB %s, 1 server connected' % run.result(
        "Read the cluster's facts, waiting until its tables are ready")['version']
