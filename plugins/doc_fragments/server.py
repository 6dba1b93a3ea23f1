# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """How a node's RethinkDB server is stopped and started, shared by every module that does it."""

    DOCUMENTATION = r'''
options:
  service:
    description:
      - The server's systemd unit, like C(rethinkdb@default); it is stopped and started with C(systemctl).
      - Mutually exclusive with O(stop_command) and O(start_command).
    type: str
  stop_command:
    description:
      - Without O(service), the command that stops the server and returns once it has exited, as an argument
        list (run without a shell). Stopping a stopped server must succeed.
    type: list
    elements: str
  start_command:
    description:
      - Without O(service), the command that starts the server, as an argument list (run without a shell).
    type: list
    elements: str
'''
