"""A TCP relay between network namespaces, for tests: it listens on an address inside one namespace (a lab's
bridge, or loopback) and connects each client on to a target reached from the namespace it was started in.

It is how a service of the machine (an S3 store on loopback) is offered to the hosts of a test lab, and how a
test takes that service away and brings it back: stopping the relay closes its listener and resets every
connection through it, as a store that went down would; the service behind it keeps its data.

    relay = Relay('10.231.0.1', 9000, '127.0.0.1', 47123, 'relay.log', listen_netns='rdblab-1234abcd-ctl')
    relay.start(); relay.stop(); relay.start()

Run as a program (`python netrelay.py LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT [NETNS]`) it prints
`ready` once it listens and relays until SIGTERM. Standard library only.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading

START_TIMEOUT = 10.0
CHUNK = 1 << 16
# argv prefix for helper processes outside any lab namespace: they get SIGTERM when the test process dies, even
# by SIGKILL, so none outlives it (those inside a lab's namespaces are swept with it).
DIES_WITH_US = ['setpriv', '--pdeathsig', 'TERM', '--']


def _listener(host: str, port: int, netns: str | None) -> socket.socket:
    """A listening socket made inside `netns` (by its /run/netns name) or in this process's namespace."""
    own = os.open('/proc/thread-self/ns/net', os.O_RDONLY) if netns else None
    try:
        if netns:
            target = os.open('/run/netns/%s' % netns, os.O_RDONLY)
            try:
                os.setns(target, os.CLONE_NEWNET)
            finally:
                os.close(target)
        listener = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(64)
        return listener
    finally:
        if own is not None:
            os.setns(own, os.CLONE_NEWNET)
            os.close(own)


def _reset_on_close(sock: socket.socket) -> None:
    """Close with a reset rather than a FIN, so a stopped relay looks like a server that went away."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy one direction until its end closes, then pass the end of stream on."""
    try:
        while True:
            chunk = source.recv(CHUNK)
            if not chunk:
                break
            sink.sendall(chunk)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        for sock in (source, sink):
            sock.close()


def _serve(client: socket.socket, target: tuple) -> None:
    _reset_on_close(client)
    try:
        upstream = socket.create_connection(target, timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    _reset_on_close(upstream)
    threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
    _pump(client, upstream)


def main(argv: list) -> int:
    """Relay until SIGTERM; exit status 2 on a bad command line, 1 when the address cannot be listened on."""
    if len(argv) not in (4, 5):
        sys.stderr.write('usage: netrelay.py LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT [NETNS]\n')
        return 2
    try:
        listener = _listener(argv[0], int(argv[1]), argv[4] if len(argv) == 5 else None)
    except OSError as error:
        sys.stderr.write('netrelay: cannot listen on %s:%s: %s\n' % (argv[0], argv[1], error))
        return 1
    signal.signal(signal.SIGTERM, lambda _signum, _frame: os._exit(0))
    sys.stdout.write('ready\n')
    sys.stdout.flush()
    target = (argv[2], int(argv[3]))
    while True:
        client, _address = listener.accept()
        threading.Thread(target=_serve, args=(client, target), daemon=True).start()


class Relay:
    """One relay process: where it listens, where it leads, and how to stop and start it again."""

    def __init__(self, listen_host: str, listen_port: int, target_host: str, target_port: int, log_file,
                 listen_netns: str | None = None):
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.target = (target_host, target_port)
        self.listen_netns = listen_netns
        self.log_file = log_file
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """http://host:port of the listening side."""
        host = '[%s]' % self.listen_host if ':' in self.listen_host else self.listen_host
        return 'http://%s:%d' % (host, self.listen_port)

    def running(self) -> bool:
        """Whether the relay process is alive."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start relaying (again); returns once the listener is up."""
        if self.running():
            return
        argv = DIES_WITH_US + [sys.executable, '-I', os.path.abspath(__file__), self.listen_host,
                               str(self.listen_port), self.target[0], str(self.target[1])]
        if self.listen_netns:
            argv.append(self.listen_netns)
        with open(self.log_file, 'ab') as log:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                            start_new_session=True)
        ready = _read_line(self.process.stdout, START_TIMEOUT)
        if ready != b'ready\n':
            self.stop()
            raise RuntimeError('relay to %s:%d did not start listening on %s' % (self.target + (self.url,)))

    def stop(self) -> None:
        """Close the listener and reset every connection through it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process.stdout.close()
        self.process = None


def _read_line(stream, timeout: float) -> bytes:
    """One line from a pipe, or b'' when none comes within the timeout."""
    line: list = []
    reader = threading.Thread(target=lambda: line.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return line[0] if line else b''


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
