# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where backup sets are stored: one small interface, one file per kind (repository_local, repository_s3).

A repository holds the sets of clusters. A set is written part by part, each part as a stream hashed on its
way, and becomes visible as complete only when its manifest is committed. Callers never know which kind they
write to; they name a repository by a URL-like string:

  /srv/backups or controller:/srv/backups   a directory on the controller (nodes hand their parts over)
  path:/mnt/backups                         a directory every node and the controller mount at that path
  s3://bucket/prefix                        an S3-compatible object store

Beside its sets, a cluster keeps chains of continuous backup (docs/continuous-backup.md) under
`<cluster>/chains/<chain_id>/`: flat namespaces of objects, each written once and visible only when whole,
which module_utils/chain_store gives their meaning.
"""

from __future__ import annotations

import datetime
import re
from typing import NamedTuple

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.streams import HashingWriter

KINDS = ('controller', 'path', 's3')
S3_URL_RE = re.compile(r's3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?')
# Set states as stored: committed (a manifest), partial (no manifest yet), failed (marked), deleting (a prune
# that was interrupted).
STORED_STATES = ('committed', 'partial', 'failed', 'deleting')
FAILED_MARKER = 'FAILED'
RUN_RECORD = 'run.json'
# Where a cluster's chains live, beside its sets.
CHAINS_DIR = 'chains'


class RepositoryError(Exception):
    """The repository cannot be reached or refused an operation; the message says what to fix."""


class MissingLibraryError(RepositoryError):
    """A library that a feature needs is not installed on this host (boto3 for s3, jmespath for queries):
    modules fail with missing_required_lib(error.library) and exception=error.import_traceback."""

    def __init__(self, library: str, import_traceback: str) -> None:
        super().__init__('the Python library %s is required on this host: install it (pip install %s)' % (library, library))
        self.library = library
        self.import_traceback = import_traceback


class StoredSet(NamedTuple):
    """One set as the repository stores it, before anyone read its manifest."""

    set_id: str
    state: str
    location: str
    bytes: int


class PartStat(NamedTuple):
    """What the store says of a part without reading it."""

    bytes: int
    store_checksum: str | None


class PartWriter:
    """A part being written: bytes go in with write(); finish() makes it durable and visible in the set and
    returns its facts; abort() removes every trace of it. Subclasses implement _put(), _finish(), _abort()."""

    def __init__(self, location: str):
        self.location = location
        self._hashing = HashingWriter(self)
        self._done = False

    @property
    def stream(self) -> HashingWriter:
        """Where a producer writes: hashes and counts on the way to the store."""
        return self._hashing

    def write(self, chunk) -> int:
        self._put(chunk)
        return len(chunk)

    def flush(self) -> None:
        """Parts are made durable by finish()."""

    def finish(self) -> dict:
        """Make the part durable; returns bytes, sha256 and the store's own checksum (or None)."""
        store_checksum = self._finish()
        self._done = True
        return dict(bytes=self._hashing.bytes, sha256=self._hashing.hexdigest(), store_checksum=store_checksum)

    def abort(self) -> None:
        if not self._done:
            self._done = True
            self._abort()

    def _put(self, chunk) -> None:
        raise NotImplementedError

    def _finish(self) -> str | None:
        raise NotImplementedError

    def _abort(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is not None:
            self.abort()


class Repository:
    """The interface every kind implements. cluster and set_id are checked by the caller (set_format)."""

    kind = ''

    def describe(self) -> str:
        """Where the repository is, for messages (never a secret)."""
        raise NotImplementedError

    def check_reachable(self, cluster: str, set_id: str | None = None) -> None:
        """Preflight: the repository answers and can be written to; with set_id, that set is begun there (which
        proves a shared path is the shared one). RepositoryError says what to fix."""
        raise NotImplementedError

    def begin(self, cluster: str, set_id: str, run: dict) -> str:
        """Create the set as partial, recording who writes it (run); return its location."""
        raise NotImplementedError

    def part_writer(self, cluster: str, set_id: str, path: str, size_hint: int | None = None) -> PartWriter:
        """A writer of one part of a partial set; size_hint (bytes, a guess) lets a store size its uploads."""
        raise NotImplementedError

    def open_part(self, cluster: str, set_id: str, path: str, committed: bool = True):
        """A part as a forward-only binary stream (read(), close())."""
        raise NotImplementedError

    def stat_part(self, cluster: str, set_id: str, path: str, committed: bool = True) -> PartStat | None:
        """Size (and the store's checksum) of a part, or None when it is missing."""
        raise NotImplementedError

    def read_file(self, cluster: str, set_id: str, name: str, committed: bool = True) -> bytes | None:
        """A small file of a set (manifest.json, cluster.json, run.json, FAILED), or None."""
        raise NotImplementedError

    def commit(self, cluster: str, set_id: str, manifest: bytes) -> str:
        """Write the manifest last and atomically, so that the set is visible as complete at once; return
        the committed set's location."""
        raise NotImplementedError

    def mark_failed(self, cluster: str, set_id: str, reason: str, failed_at: str) -> bool:
        """Mark a partial set failed; False when it already was. Works on a full disk (at worst by a rename)."""
        raise NotImplementedError

    def list_sets(self, cluster: str) -> list[StoredSet]:
        """Every set of the cluster in any stored state; a cluster with none yet has an empty list."""
        raise NotImplementedError

    def delete_set(self, cluster: str, stored: StoredSet) -> None:
        """Delete a set so that an interruption never leaves something that looks complete."""
        raise NotImplementedError

    def write_report(self, cluster: str, name: str, data: bytes) -> str:
        """Keep a run's report (JSON) with the cluster's sets, as `<cluster>/reports/<name>`; return where."""
        raise NotImplementedError

    def leftovers(self, cluster: str, older_than: datetime.datetime) -> list[str]:
        """What interrupted writers left outside any set and older than the given time (S3 multipart uploads
        in progress, partial part files), for prune to remove."""
        raise NotImplementedError

    def remove_leftovers(self, cluster: str, older_than: datetime.datetime) -> list[str]:
        """Remove what leftovers() lists; return what was removed."""
        raise NotImplementedError

    # --- chains: objects written once, each visible only when whole -----------------------------------------

    def list_chains(self, cluster: str) -> list[str]:
        """The ids of the cluster's chains (any name under <cluster>/chains/); empty when there is none."""
        raise NotImplementedError

    def chain_objects(self, cluster: str, chain: str) -> dict[str, int]:
        """Every whole object of a chain, name (relative to the chain, '/' separated) to bytes, in one listing."""
        raise NotImplementedError

    def chain_object_writer(self, cluster: str, chain: str, name: str, exclusive: bool = False) -> PartWriter:
        """A writer of one chain object, visible under its name only once finished. With exclusive, finish()
        fails with RepositoryError when the name exists already (two writers of one chain: the second loses)."""
        raise NotImplementedError

    def read_chain_object(self, cluster: str, chain: str, name: str) -> bytes | None:
        """A small chain object (a record), or None when it does not exist."""
        raise NotImplementedError

    def open_chain_object(self, cluster: str, chain: str, name: str):
        """A chain object as a forward-only binary stream (read(), close()); RepositoryError when missing."""
        raise NotImplementedError

    def delete_chain_objects(self, cluster: str, chain: str, names: list[str]) -> None:
        """Delete objects of a chain in the order given (missing ones are no error)."""
        raise NotImplementedError


def parse_location(url: str) -> tuple[str, str]:
    """(kind, location) of a repository URL; RepositoryError with the accepted forms otherwise."""
    if not isinstance(url, str) or not url.strip():
        raise RepositoryError('repository is empty: give a directory (/srv/backups), path:/mnt/backups or s3://bucket/prefix')
    url = url.strip()
    if url.startswith('s3://'):
        if not S3_URL_RE.fullmatch(url):
            raise RepositoryError("repository %s is not s3://<bucket>/<prefix> with a valid bucket name (lowercase letters, "
                                  "digits, '.' and '-', 3 to 63 characters)" % url)
        return 's3', url
    for kind in ('controller', 'path'):
        if url.startswith(kind + ':'):
            url = url[len(kind) + 1:]
            break
    else:
        kind = 'controller'
    if not url.startswith('/'):
        raise RepositoryError('repository %s is not an absolute directory, path:/<directory> or s3://<bucket>/<prefix>' % url)
    return kind, url


def repository_argument_spec() -> dict:
    """The options that name a repository, for every module that reads or writes one."""
    return dict(
        repository=dict(type='str'),
        cluster=dict(type='str'),
        s3_endpoint_url=dict(type='str'),
        s3_region=dict(type='str'),
        s3_profile=dict(type='str'),
        s3_credentials_file=dict(type='path'),
        s3_ca_bundle=dict(type='path'),
    )


def repository_from_params(params: dict) -> Repository:
    """The repository that a module's options name."""
    return open_repository(params['repository'], dict(
        endpoint_url=params['s3_endpoint_url'], region=params['s3_region'], profile=params['s3_profile'],
        credentials_file=params['s3_credentials_file'], ca_bundle=params['s3_ca_bundle']))


def part_destination(params: dict, path: str, size_hint: int | None = None) -> PartWriter:
    """Where a module writes a part: params['dest'], a file on this host (given to the owner of its directory,
    so that a login user can fetch what a module run with become wrote), or else the set params['set_id'] of
    the repository the params name."""
    from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository_local import FileWriter
    if params.get('dest'):
        return FileWriter(params['dest'], hand_to_owner=True)
    return repository_from_params(params).part_writer(params['cluster'], params['set_id'], path, size_hint)


def part_source(params: dict, path: str):
    """Where a module reads a part from: params['archive'], a file on this host, or else the committed set
    params['set_id'] of the repository the params name. A forward-only binary stream."""
    if params.get('archive'):
        try:
            return open(params['archive'], 'rb')
        except OSError as exc:
            raise RepositoryError('cannot read %s: %s' % (params['archive'], exc.strerror)) from None
    return repository_from_params(params).open_part(params['cluster'], params['set_id'], path)


def open_repository(url: str, s3_options: dict | None = None) -> Repository:
    """The repository a URL names; s3_options (endpoint_url, region, profile, credentials_file, ca_bundle)
    configure the s3 kind."""
    kind, location = parse_location(url)
    if kind == 's3':
        from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository_s3 import S3Repository
        return S3Repository(location, **(s3_options or {}))
    from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository_local import LocalRepository
    return LocalRepository(location, kind)
