# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Python driver's `rethinkdb dump` and `rethinkdb restore` tools, and the archives they exchange.

The tools run as `python -m rethinkdb dump|restore` under the module's own interpreter. This file builds their
argv from option values (one place says which option becomes which flag), hands them the password in a 0600
file, runs them without the environment variable that breaks them, and reads their output. The archives they
exchange are read by module_utils/dump_archive.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.dump_archive import NAME_PATTERN

# Environment variables the tools must not see: RETHINKDB_DRIVER_PORT makes every tool exit 2.
HIDDEN_VARIABLES = ('RETHINKDB_DRIVER_PORT',)
# The tools print in the encoding run_command decodes, whatever the node's locale.
TOOL_ENVIRONMENT = {'PYTHONIOENCODING': 'utf-8'}

SYSTEM_DATABASE = 'rethinkdb'

DUMP_SUMMARY = re.compile(r'^\d+ rows? exported from ')
RESTORE_SUMMARY = re.compile(r'^\d+ rows? imported to ')
_TERMINAL_ESCAPES = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')
_OPTION_ERROR = re.compile(r': error: (.+)$')
# Lines that only say that an error was printed above them.
_ECHO_LINES = re.compile(r'^(Error: )*(export failed, |import failed: )*(Error: )*Errors occurred during (export|import)$')
# Tracebacks, the headers of failed worker processes, and Python warnings.
_NOISE_LINES = re.compile(r'^(Traceback |Process [\w-]+:$|\S+:\d+: \w*Warning: )')
# The lines between two tracebacks of one error.
_CHAINED_LINES = re.compile(r'^(During handling of the above exception|The above exception was the direct cause)')
# What the tools say when a server went away or a table lost its primary replica during the run.
_LOST_SERVER = re.compile(r'lost contact|not available|Could not connect|[Cc]onnection (is )?closed|[Cc]onnection reset|timed out|'
                          r'UnboundLocalError|ReqlDriverError')
_OUT_OF_SPACE = (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT))


def _value(flag: str) -> Callable:
    return lambda value: [] if value is None else [flag, str(value)]


def _flag(flag: str) -> Callable:
    return lambda value: [flag] if value else []


def _flag_unless(flag: str) -> Callable:
    return lambda value: [] if value else [flag]


def _each(flag: str) -> Callable:
    return lambda values: [part for value in values or () for part in (flag, value)]


LOGIN_FORMATS = (
    ('login_host', _value('--host-name')),
    ('login_port', _value('--driver-port')),
    ('login_user', _value('--user')),
    ('password_file', _value('--password-file')),
    ('tls_ca_file', _value('--tls-cert')),
)
TOOL_FORMATS = {
    'dump': (
        ('file', _value('--file')),
        ('temp_dir', _value('--temp-dir')),
        ('clients', _value('--clients')),
        ('read_outdated', _flag('--read-outdated')),
        ('tables', _each('--export')),
    ),
    'restore': (
        ('temp_dir', _value('--temp-dir')),
        ('clients', _value('--clients')),
        ('force', _flag('--force')),
        ('create_indexes', _flag_unless('--no-secondary-indexes')),
        ('hard_durability', _flag('--hard-durability')),
        ('tables', _each('--import')),
    ),
}


def tool_argv(verb: str, values: dict, positional: tuple = ()) -> list:
    """argv of `python -m rethinkdb <verb>`: positional paths (made absolute, so none reads as an option), then
    the login flags and the verb's flags from `values`, which must hold every key the formats name."""
    argv = [sys.executable, '-m', 'rethinkdb', verb] + [os.path.abspath(path) for path in positional]
    for key, format_value in LOGIN_FORMATS + TOOL_FORMATS[verb]:
        argv.extend(format_value(values[key]))
    return argv


class ToolFailure(Exception):
    """A step of a dump or restore failed: the message is one line; details go into the failed result."""

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.details = details


def os_failure(action: str, exc: OSError, advice: str) -> ToolFailure:
    """A ToolFailure for a failed file operation; running out of space gets the advice on what to do."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ToolFailure('Cannot %s: %s; %s.' % (action, reason, advice))
    return ToolFailure('Cannot %s: %s.' % (action, reason))


def writable_directory(path: str) -> str | None:
    """Why a directory cannot take new files, or None."""
    if not os.path.isdir(path):
        return 'does not exist or is not a directory'
    if not os.access(path, os.W_OK | os.X_OK):
        return 'is not writable by this user'
    return None


def make_scratch_dir(parent: str, prefix: str) -> str:
    """A new private directory (mode 0700) under parent for one run's temporary files."""
    return tempfile.mkdtemp(prefix=prefix, suffix='.partial', dir=parent)


@contextlib.contextmanager
def scratch_dirs(module):
    """A list for the scratch directories of one run: on leaving, each is removed with everything in it, and
    one that cannot be is a warning."""
    paths: list = []
    try:
        yield paths
    finally:
        for path in paths:
            try:
                shutil.rmtree(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                module.warn('Could not remove the temporary directory %s: %s.' % (path, exc.strerror or exc))


def parse_selector(name: str) -> tuple:
    """'db.table' to (db, table) and 'db' to (db, None), as the tools' -e and -i take them; ValueError otherwise."""
    db, dot, table = name.partition('.')
    if not NAME_PATTERN.match(db) or (dot and not NAME_PATTERN.match(table)):
        raise ValueError("'%s' is not a database or database.table name" % name)
    if db == SYSTEM_DATABASE:
        raise ValueError("'%s' is in the system database %s, which the tools do not dump or restore" % (name, SYSTEM_DATABASE))
    return db, table or None


def check_password(password: str) -> None:
    """ValueError for a password that --password-file cannot carry: the tools strip trailing newlines."""
    if password.endswith('\n'):
        raise ValueError('the password ends with a newline, which the rethinkdb tools strip from --password-file')


@contextlib.contextmanager
def password_file(password: str, directory: str | None = None):
    """Yield the path of a file only its owner can read, holding the password (None for no password);
    the file is removed when the block ends, however it ends."""
    if not password:
        yield None
        return
    descriptor, path = tempfile.mkstemp(prefix='rethinkdb-password-', dir=directory)
    try:
        with os.fdopen(descriptor, 'w', encoding='utf-8') as stream:
            stream.write(password)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


@contextlib.contextmanager
def _hidden_variables():
    """Take HIDDEN_VARIABLES out of this process's environment while a tool starts: run_command can add
    variables for a child but not remove them."""
    saved = dict((name, os.environ.pop(name)) for name in HIDDEN_VARIABLES if name in os.environ)
    try:
        yield
    finally:
        os.environ.update(saved)


def clean_output(text: str) -> str:
    """A tool's output as a person reads it: progress bars reduced to their last state, escapes removed."""
    lines = [line.rsplit('\r', 1)[-1].rstrip() for line in _TERMINAL_ESCAPES.sub('', text).split('\n')]
    return '\n'.join(lines).strip('\n')


def without_tracebacks(text: str) -> str:
    """A tool's output without the frames of Python tracebacks (their header and indented lines), which say
    where in its code the tool failed; the exception's own line, which says why, stays."""
    kept = []
    in_traceback = False
    for line in text.split('\n'):
        if line.startswith('Traceback (most recent call last):') or _CHAINED_LINES.match(line):
            in_traceback = True
        elif in_traceback and (not line or line[0].isspace()):
            continue
        else:
            in_traceback = False
            kept.append(line)
    return '\n'.join(kept).strip('\n')


class ToolRun:
    """One run of a tool: its argv (the password file's path only), exit status and cleaned output."""

    def __init__(self, argv: list, rc: int, stdout: str, stderr: str, seconds: float):
        self.argv = argv
        self.rc = rc
        self.stdout = clean_output(stdout)
        self.stderr = without_tracebacks(clean_output(stderr))
        self.seconds = seconds

    def summary(self, pattern: re.Pattern) -> str:
        """The tool's last line matching its summary pattern, else its last line."""
        lines = [line.strip() for line in self.stdout.splitlines() if line.strip()]
        matching = [line for line in lines if pattern.match(line)]
        return (matching or lines or [''])[-1]

    def reason(self) -> str:
        """The most telling line of the tool's error output, without its 'Error:' prefixes."""
        for line in self.stderr.splitlines():
            option_error = _OPTION_ERROR.search(line)
            if option_error:
                return option_error.group(1).rstrip('.')
        top_level = [line.strip() for line in self.stderr.splitlines() + self.stdout.splitlines()
                     if line.strip() and not line[0].isspace() and not _NOISE_LINES.match(line)]
        telling = [line for line in top_level if not _ECHO_LINES.match(line)] or top_level or ['no error message']
        reason = telling[0]
        while reason.startswith('Error: '):
            reason = reason[len('Error: '):]
        return reason.rstrip('.:')

    def out_of_space(self) -> bool:
        """Whether the tool failed for want of disk space or quota."""
        return any(text in self.stderr or text in self.stdout for text in _OUT_OF_SPACE)

    def details(self) -> dict:
        """What a failed task returns besides its message."""
        return dict(rc=self.rc, stdout=self.stdout, stderr=self.stderr, cmd=self.argv)

    def check(self, verb: str, writing: str, advice: str, server: str) -> None:
        """Raise ToolFailure unless the tool exited with 0: out of space while `writing` (with advice on room),
        lost `server` (host:port) or a replica behind it, or exited with its most telling reason."""
        if self.rc == 0:
            return
        if self.out_of_space():
            raise ToolFailure('rethinkdb %s ran out of disk space %s: %s.' % (verb, writing, advice), **self.details())
        reason = self.reason()
        if _LOST_SERVER.search(reason):
            raise ToolFailure('rethinkdb %s lost the cluster at %s: %s; check that its servers run and its tables are available '
                              '(bigchaindb.rethinkdb.info), then run the task again.' % (verb, server, reason), **self.details())
        raise ToolFailure('rethinkdb %s exited with %d: %s.' % (verb, self.rc, reason), **self.details())


def run_tool(module, argv: list) -> ToolRun:
    """Run a tool through module.run_command (an argv list, no shell) with the environment it needs."""
    started = time.monotonic()
    with _hidden_variables():
        rc, stdout, stderr = module.run_command(argv, environ_update=TOOL_ENVIRONMENT)
    return ToolRun(argv, rc, stdout, stderr, round(time.monotonic() - started, 3))
