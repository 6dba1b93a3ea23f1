# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """The options that name a backup repository, shared by every module that reads or writes one."""

    DOCUMENTATION = r'''
options:
  repository:
    description:
      - Where the backup sets are stored.
      - A directory (C(/srv/backups/rethinkdb), or C(controller:/srv/backups/rethinkdb)) is the
        C(controller) kind, a directory on the host that runs the module; the roles run the modules that
        read and write it on the controller, and nodes hand their parts over.
      - C(path:/mnt/backups/rethinkdb) is a directory that every node and the controller mount at that
        path (NFS, CephFS, a SAN filesystem); nodes write their parts there directly, and each reads its
        part back once to check it.
      - C(s3://bucket/prefix) is an S3-compatible object store; see the O(s3_endpoint_url) and the other
        C(s3_) options. Credentials come from O(s3_credentials_file) or the standard AWS sources
        (environment, shared files, instance role), never from an option.
    type: str
  cluster:
    description:
      - The cluster whose sets these are, the directory or key prefix under the repository that holds them.
      - Letters, digits, C(_), C(.) and C(-), starting with a letter or digit. The roles use the inventory
        group's name.
    type: str
  s3_endpoint_url:
    description:
      - The URL of an S3-compatible store other than AWS (MinIO, Ceph RGW, ...). Path-style addressing
        is used with it.
    type: str
  s3_region:
    description:
      - The store's region.
    type: str
  s3_profile:
    description:
      - The profile of the shared credentials file to use.
    type: str
  s3_credentials_file:
    description:
      - A file in the AWS shared-credentials format (C([profile]), C(aws_access_key_id),
        C(aws_secret_access_key)) to read the credentials from, readable by the module's user only.
    type: path
  s3_ca_bundle:
    description:
      - A CA bundle (PEM) to verify the store's TLS certificate with.
    type: path
requirements:
  - boto3 on the host that runs the module, for an C(s3://) repository
'''
