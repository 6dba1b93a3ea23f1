"""The JavaScript rendering of a ReQL function that `index_status()` (`query`) and `get_write_hook()` show.

A one-line version of the real server's pretty printer (pprint/js_pprint.cc): method chains for terms that
continue a chain, `r.name(...)` for the others, `varN` for variables; it does not break long lines.
"""

from __future__ import annotations

import json

from .protocol import Term

_NOT_CHAINED = {
    Term.ERROR, Term.UUID, Term.HTTP, Term.DB, Term.EQ, Term.NE, Term.LT, Term.LE, Term.GT, Term.GE, Term.NOT,
    Term.ADD, Term.SUB, Term.MUL, Term.DIV, Term.MOD, Term.OBJECT, Term.RANGE, Term.DB_CREATE, Term.DB_DROP,
    Term.DB_LIST, Term.BRANCH, Term.OR, Term.AND, Term.JSON, Term.ISO8601, Term.EPOCH_TIME, Term.NOW, Term.TIME,
    Term.LITERAL, Term.RANDOM, Term.DATUM, Term.VAR, Term.MAKE_ARRAY, Term.MAKE_OBJ, Term.ARGS, Term.JAVASCRIPT,
    Term.ASC, Term.DESC, Term.MINVAL, Term.MAXVAL,
}


def _js_name(name: str) -> str:
    parts = name.lower().split('_')
    return parts[0] + ''.join(part.capitalize() for part in parts[1:])


def _term_type(term) -> int:
    if isinstance(term, dict):
        return Term.MAKE_OBJ
    if isinstance(term, list) and term and isinstance(term[0], int):
        return term[0]
    return Term.DATUM


def _args(term) -> list:
    return term[1] if isinstance(term, list) and len(term) > 1 else []


def _optargs(term) -> dict:
    return term[2] if isinstance(term, list) and len(term) > 2 else {}


def _datum_text(value) -> str:
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (int, float)):
        return str(int(value)) if float(value).is_integer() else '%f' % value
    if isinstance(value, str):
        return '"%s"' % value
    if isinstance(value, list):
        return '[' + ', '.join(_datum_text(item) for item in value) + ']'
    return '{' + ', '.join('"%s": %s' % (key, _datum_text(item)) for key, item in value.items()) + '}'


def _continues_chain(term) -> bool:
    kind = _term_type(term)
    if kind in (Term.TABLE, Term.FUNCALL):
        return len(_args(term)) == 2
    return kind not in _NOT_CHAINED and kind not in (Term.FUNC, Term.IMPLICIT_VAR)


def _uses_r_dot(term) -> bool:
    return _term_type(term) not in (Term.VAR, Term.DATUM)


class _Printer:
    def __init__(self):
        self.in_r_expr = False

    def visit(self, term, prepend=True) -> str:
        kind = _term_type(term)
        outer = self.in_r_expr
        try:
            if kind == Term.DATUM:
                value = term[1][0] if isinstance(term, list) else term
                text = _datum_text(value)
                return text if outer else self._r('expr(%s)' % text, prepend)
            if kind == Term.MAKE_ARRAY:
                self.in_r_expr = True
                text = '[' + ', '.join(self.visit(item) for item in _args(term)) + ']'
                return text if outer else self._r('expr(%s)' % text, prepend)
            if kind == Term.MAKE_OBJ:
                self.in_r_expr = True
                items = term.items() if isinstance(term, dict) else _optargs(term).items()
                if outer:
                    return '{' + ', '.join('"%s": %s' % (key, self.visit(value)) for key, value in items) + '}'
                return self._r('object(%s)' % ', '.join('"%s", %s' % (key, self.visit(value)) for key, value in items),
                               prepend)
            if kind == Term.FUNC:
                return self.function(term)
            if kind == Term.VAR:
                return _var_name(_datum_of(_args(term)[0]))
            if kind == Term.IMPLICIT_VAR:
                return self._r('row', prepend)
            if kind == Term.FUNCALL and len(_args(term)) != 2:
                arguments = _args(term)
                self.in_r_expr = True
                inner = ', '.join([self.visit(item) for item in arguments[1:]] + [self.visit(arguments[0])])
                return self._r('do(%s)' % inner, prepend)
            if _continues_chain(term):
                return self.chain(term, prepend)
            if _args(term) or _optargs(term):
                return self._r(self.call(term), prepend)
            return self._r(_js_name(Term(kind).name), prepend)
        finally:
            self.in_r_expr = outer

    @staticmethod
    def _r(text: str, prepend: bool) -> str:
        return 'r.' + text if prepend else text

    def call(self, term) -> str:
        outer = self.in_r_expr
        self.in_r_expr = True
        parts = [self.visit(item) for item in _args(term)]
        if _optargs(term):
            parts.append(self.optargs(term))
        self.in_r_expr = outer
        return '%s(%s)' % (_js_name(Term(_term_type(term)).name), ', '.join(parts))

    def optargs(self, term) -> str:
        return '{' + ', '.join('"%s": %s' % (_js_name(name), self.visit(value))
                               for name, value in _optargs(term).items()) + '}'

    def chain(self, term, prepend: bool) -> str:
        suffixes = []
        current = term
        while _continues_chain(current):
            kind = _term_type(current)
            arguments = _args(current)
            outer = self.in_r_expr
            self.in_r_expr = True
            if kind == Term.BRACKET:
                suffixes.append('(%s)' % self.visit(arguments[1]))
                current = arguments[0]
            elif kind == Term.FUNCALL:
                suffixes.append('.do(%s)' % self.visit(arguments[0]))
                current = arguments[1]
            else:
                parts = [self.visit(item) for item in arguments[1:]]
                if _optargs(current):
                    parts.append(self.optargs(current))
                suffixes.append('.%s(%s)' % (_js_name(Term(kind).name), ', '.join(parts)))
                current = arguments[0] if arguments else None
            self.in_r_expr = outer
            if current is None:
                break
        tail = ''.join(reversed(suffixes))
        if current is None:
            return self._r(tail.lstrip('.'), prepend)
        if _uses_r_dot(current):
            return self._r(self.visit(current, prepend=False) + tail, prepend)
        return self.visit(current) + tail

    def function(self, term) -> str:
        params = _args(term)[0]
        names = _datum_of(params) if _term_type(params) == Term.DATUM else [_datum_of(item) for item in _args(params)]
        body = _args(term)[1]
        outer = self.in_r_expr
        self.in_r_expr = False
        text = 'function(%s) { return %s; }' % (', '.join(_var_name(name) for name in names), self.visit(body))
        self.in_r_expr = outer
        return text


def _var_name(number: int) -> str:
    """`var3`, or `_var19` for the server's own (negative) variables."""
    return 'var%d' % number if number >= 0 else '_var%d' % -number


def _datum_of(term):
    if isinstance(term, list) and term and term[0] == Term.DATUM:
        return term[1][0]
    return term


def function_text(source) -> str:
    """`function(var1) { return var1("field"); }` for a FUNC term's JSON."""
    try:
        return _Printer().function(source)
    except (IndexError, KeyError, TypeError, ValueError):
        return 'non-printable function (%s)' % json.dumps(source)
