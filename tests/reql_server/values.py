"""The values a ReQL term can produce besides datums: databases, functions, orderings, sequences and selections."""

from __future__ import annotations

from . import datum


class Database:
    """r.db(name)."""

    __slots__ = ('name', 'id')

    def __init__(self, name: str, db_id: str):
        self.name = name
        self.id = db_id


class Func:
    """A ReQL function: parameter variable ids, body, and the scope it closes over.

    `node` is the FUNC node it came from (None for functions the server builds itself), `native` a Python
    callable used instead of a body.
    """

    __slots__ = ('params', 'body', 'scope', 'node', 'native', 'implicit')

    def __init__(self, params: list, body=None, scope: dict | None = None, node=None, native=None, implicit=False):
        self.params = params
        self.body = body
        self.scope = scope or {}
        self.node = node
        self.native = native
        self.implicit = implicit

    @property
    def arity(self) -> int:
        """How many arguments the function takes (-1 for any)."""
        return len(self.params) if self.params is not None else -1


class Ordering:
    """r.asc(key) / r.desc(key): key is a field name or a Func."""

    __slots__ = ('descending', 'key')

    def __init__(self, descending: bool, key):
        self.descending = descending
        self.key = key


class Sequence:
    """A lazy sequence of datums, produced in batches. Subclasses say what `typeOf` calls them."""

    kind = 'STREAM'
    val_type = 'SEQUENCE'
    table = None

    def batches(self):
        """An iterator of lists of datums."""
        raise NotImplementedError

    def raw_batches(self):
        """An iterator of lists of JSON texts when rows can go to the client verbatim, else None."""
        return None

    def __iter__(self):
        for batch in self.batches():
            yield from batch


class Stream(Sequence):
    """A sequence computed by `factory()`, an iterator of batches; with a table, a selection of that table's rows."""

    def __init__(self, factory, table=None, raw_factory=None):
        self._factory = factory
        self._raw_factory = raw_factory
        self.table = table
        if table is not None:
            self.kind = 'SELECTION<STREAM>'
            self.val_type = 'SELECTION'

    def batches(self):
        return self._factory()

    def raw_batches(self):
        return self._raw_factory() if self._raw_factory is not None else None


class SingleSelection:
    """table.get(key) and other single rows of a table: writable, and a datum (the row or null) when read."""

    kind = 'SELECTION<OBJECT>'
    val_type = 'SINGLE_SELECTION'

    def __init__(self, table, key, row=datum.MINVAL):
        self.table = table
        self.key = key
        self._row = row

    @property
    def row(self):
        """The row (fetched once), or None."""
        if self._row is datum.MINVAL:
            self._row = self.table.get(self.key)
        return self._row


class ArraySelection(list):
    """An array of a table's rows (order_by without an index on a selection): still writable."""

    kind = 'SELECTION<ARRAY>'

    def __init__(self, rows: list, table):
        super().__init__(rows)
        self.table = table

    def batches(self):
        """The rows, as one batch (so writes can iterate it like a stream)."""
        return iter([list(self)])


class Args:
    """The result of r.args(array): spliced into the enclosing term's arguments."""

    __slots__ = ('values',)

    def __init__(self, values: list):
        self.values = values
