# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Connection options shared by every module that talks to a RethinkDB server."""

    DOCUMENTATION = r'''
options:
  login_host:
    description:
      - Host name or address of the RethinkDB server to connect to.
      - Any server of the cluster will do; it answers for the whole cluster.
    type: str
    default: localhost
  login_port:
    description:
      - The server's client driver port.
    type: int
    default: 28015
  login_user:
    description:
      - The RethinkDB user to log in as.
    type: str
    default: admin
  login_password:
    description:
      - The user's password. Leave unset for a user without a password.
      - Mutually exclusive with O(login_password_file).
    type: str
  login_password_file:
    description:
      - A file that holds the user's password; one trailing newline is ignored, as RethinkDB's own
        tools do.
      - Mutually exclusive with O(login_password).
    type: path
  tls_ca_file:
    description:
      - A CA certificate (PEM) to verify the server's TLS certificate with. Setting it turns TLS on.
    type: path
  connect_timeout:
    description:
      - Seconds to wait for the connection and the login handshake.
    type: float
    default: 20
requirements:
  - rethinkdb (the Python driver, 2.4) on the host that runs the module
notes:
  - The password never appears in a module's result or in a command line. Tools that need it read it
    from a temporary file that only the module's user can read.
'''
