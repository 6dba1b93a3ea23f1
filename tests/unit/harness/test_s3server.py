# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Another store's credentials come from the file RETHINKDB_S3_CREDENTIALS_FILE names (its profile) or from the
standard AWS variables, and a missing one is said plainly."""

from __future__ import annotations

import pytest

from ansible_collections.bigchaindb.rethinkdb.tests.harness import s3server

CREDENTIALS = '''[default]
aws_access_key_id = AKIADEFAULT
aws_secret_access_key = default-secret

[backups]
aws_access_key_id = AKIABACKUPS
aws_secret_access_key = backups-secret
aws_session_token = backups-token
'''


@pytest.fixture(name='clean_environment')
def fixture_clean_environment(monkeypatch):
    for name in (s3server.CREDENTIALS_ENV, s3server.PROFILE_ENV, 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY',
                 'AWS_SESSION_TOKEN'):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_profile_of_the_named_file(clean_environment, tmp_path):
    path = tmp_path / 'credentials'
    path.write_text(CREDENTIALS)
    clean_environment.setenv(s3server.CREDENTIALS_ENV, str(path))
    clean_environment.setenv(s3server.PROFILE_ENV, 'backups')
    clean_environment.setenv('AWS_ACCESS_KEY_ID', 'AKIAIGNORED')
    assert s3server._credentials_from_environment() == {
        'aws_access_key_id': 'AKIABACKUPS', 'aws_secret_access_key': 'backups-secret',
        'aws_session_token': 'backups-token'}


def test_the_default_profile_of_the_named_file(clean_environment, tmp_path):
    path = tmp_path / 'credentials'
    path.write_text(CREDENTIALS)
    clean_environment.setenv(s3server.CREDENTIALS_ENV, str(path))
    assert s3server._credentials_from_environment() == {
        'aws_access_key_id': 'AKIADEFAULT', 'aws_secret_access_key': 'default-secret'}


def test_the_aws_variables(clean_environment):
    clean_environment.setenv('AWS_ACCESS_KEY_ID', 'AKIAFROMENV')
    clean_environment.setenv('AWS_SECRET_ACCESS_KEY', 'env-secret')
    assert s3server._credentials_from_environment() == {
        'aws_access_key_id': 'AKIAFROMENV', 'aws_secret_access_key': 'env-secret'}


def test_no_credentials_is_said_plainly(clean_environment, tmp_path):
    with pytest.raises(RuntimeError, match='no credentials were found: set RETHINKDB_S3_CREDENTIALS_FILE'):
        s3server._credentials_from_environment()
    clean_environment.setenv(s3server.CREDENTIALS_ENV, str(tmp_path / 'credentials'))
    (tmp_path / 'credentials').write_text(CREDENTIALS)
    clean_environment.setenv(s3server.PROFILE_ENV, 'absent')
    with pytest.raises(RuntimeError, match=r'has no \[absent\] profile'):
        s3server._credentials_from_environment()


def test_the_run_credentials_file_is_private_and_the_store_takes_them(clean_environment, tmp_path):
    clean_environment.setenv(s3server.ENDPOINT_ENV, 'http://127.0.0.1:9')
    clean_environment.setenv('AWS_ACCESS_KEY_ID', 'AKIAFROMENV')
    clean_environment.setenv('AWS_SECRET_ACCESS_KEY', 'env-secret')
    store = s3server.S3Store(tmp_path)
    try:
        store.launch()
        assert store.external and store.backend_url == 'http://127.0.0.1:9'
        assert oct(store.credentials_file.stat().st_mode & 0o777) == '0o600'
        assert store.credentials_file.read_text().split() == [
            '[default]', 'aws_access_key_id', '=', 'AKIAFROMENV', 'aws_secret_access_key', '=', 'env-secret']
        assert store.endpoint_url.startswith('http://127.0.0.1:') and store.relays[0].running()
    finally:
        store.teardown()
    assert store.relays == []
