"""The JavaScript rendering of a ReQL function that `index_status()` (`query`) and `get_write_hook()` show.

A port of the real server's pretty printer: pprint/js_pprint.cc turns a term into a document of text, conditional
line breaks, unconditional line breaks, concatenations, groups and nests; pprint/pprint.cc (Oppen's algorithm as
Kiselyov formulated it) lays the document out 80 columns wide. The function's body is laid out on its own, then
wrapped in `function(varN) { return ...; }` as reql_func_t::print_js_function does.
"""

from __future__ import annotations

import base64
import json

from .protocol import Term

WIDTH = 80
MAX_DEPTH = 15
_SIZE_T = 1 << 64

# -- documents: ('text', s) | ('cond', small, cont, tail) | ('br',) | ('concat', [docs]) | ('group', doc)
#    | ('nest', doc)


def _text(text: str) -> tuple:
    return ('text', text)


def _concat(*docs) -> tuple:
    return ('concat', list(docs))


def _nest(doc) -> tuple:
    return ('nest', doc)


def _nc(*docs) -> tuple:
    return _nest(_concat(*docs))


LPAREN, RPAREN, LBRACK, RBRACK, LBRACE, RBRACE = (_text(c) for c in '()[]{}')
SEMICOLON, COMMA, JUSTDOT, SP = _text(';'), _text(','), _text('.'), _text(' ')
DOTDOTDOT, NIL, TRUE, FALSE = _text('...'), _text('null'), _text('true'), _text('false')
MINVAL, MAXVAL, R, ROW = _text('minval'), _text('maxval'), _text('r'), _text('row')
RETURN, DO, LAMBDA_1, LAMBDA_2 = _text('return'), _text('do'), _text('func'), _text('tion')
EXPR, OBJECT, JS, NODE_BUFFER, BASE64 = _text('expr'), _text('object'), _text('js'), _text('Buffer'), _text("'base64'")
COND_LINEBREAK = ('cond', ' ', '', '')
DOT_LINEBREAK = ('cond', '.', '.', '')
UNCOND_LINEBREAK = ('br',)
COMMA_LINEBREAK = _concat(COMMA, ('cond', ' ', '', ''))

_NOT_CHAINED = {
    Term.ERROR, Term.UUID, Term.HTTP, Term.DB, Term.EQ, Term.NE, Term.LT, Term.LE, Term.GT, Term.GE, Term.NOT,
    Term.ADD, Term.SUB, Term.MUL, Term.DIV, Term.MOD, Term.BIT_AND, Term.BIT_OR, Term.BIT_XOR, Term.BIT_NOT,
    Term.BIT_SAL, Term.BIT_SAR, Term.OBJECT, Term.RANGE, Term.DB_CREATE, Term.DB_DROP, Term.DB_LIST, Term.BRANCH,
    Term.OR, Term.AND, Term.JSON, Term.ISO8601, Term.EPOCH_TIME, Term.NOW, Term.TIME, Term.MONDAY, Term.TUESDAY,
    Term.WEDNESDAY, Term.THURSDAY, Term.FRIDAY, Term.SATURDAY, Term.SUNDAY, Term.JANUARY, Term.FEBRUARY, Term.MARCH,
    Term.APRIL, Term.MAY, Term.JUNE, Term.JULY, Term.AUGUST, Term.SEPTEMBER, Term.OCTOBER, Term.NOVEMBER,
    Term.DECEMBER, Term.LITERAL, Term.RANDOM, Term.GEOJSON, Term.POINT, Term.LINE, Term.POLYGON, Term.CIRCLE,
    Term.DATUM, Term.VAR, Term.MAKE_ARRAY, Term.MAKE_OBJ, Term.ARGS, Term.JAVASCRIPT, Term.ASC, Term.DESC,
    Term.MINVAL, Term.MAXVAL,
}
_CONSTANTS = {
    Term.MINVAL, Term.MAXVAL, Term.IMPLICIT_VAR, Term.MONDAY, Term.TUESDAY, Term.WEDNESDAY, Term.THURSDAY,
    Term.FRIDAY, Term.SATURDAY, Term.SUNDAY, Term.JANUARY, Term.FEBRUARY, Term.MARCH, Term.APRIL, Term.MAY,
    Term.JUNE, Term.JULY, Term.AUGUST, Term.SEPTEMBER, Term.OCTOBER, Term.NOVEMBER, Term.DECEMBER,
}


# -- terms in their JSON wire form

def _type(term) -> int:
    if isinstance(term, dict):
        return Term.DATUM if '$reql_type$' in term else Term.MAKE_OBJ
    if isinstance(term, list) and term and isinstance(term[0], int) and not isinstance(term[0], bool):
        return term[0]
    return Term.DATUM


def _args(term) -> list:
    if isinstance(term, list) and len(term) > 1 and isinstance(term[1], list):
        return term[1]
    return []


def _optargs(term) -> list:
    if isinstance(term, dict):
        return list(term.items())
    if isinstance(term, list) and len(term) > 2 and isinstance(term[2], dict):
        return list(term[2].items())
    return []


def _datum(term):
    if isinstance(term, list) and term and term[0] == Term.DATUM:
        return term[1][0]
    return term


def _js_name(name: str) -> str:
    """GET_FIELD -> getField, as js_pprint.cc's to_js_name."""
    result, chars, index = [], name, 0
    while index < len(chars):
        char = chars[index]
        if char == '_':
            index += 1
            if index == len(chars):
                result.append('_')
                break
            result.append(chars[index].upper())
        else:
            result.append(char.lower())
        index += 1
    return ''.join(result)


def _term_js_name(term) -> str:
    kind = _type(term)
    try:
        return _js_name(Term(kind).name)
    except ValueError:
        return str(kind)


def _number_text(value) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return '%f' % value


def print_var(number) -> str:
    """`var3`, or `_var19` for the server's own (negative) variables."""
    number = int(round(number))
    return 'var%d' % number if number >= 0 else '_var%d' % -number


class _Printer:
    """js_pprint.cc's js_pretty_printer_t."""

    def __init__(self):
        self.depth = 0
        self.prepend_ok = True
        self.in_r_expr = False

    def visit(self, term):
        old_r_expr = self.in_r_expr
        self.depth += 1
        if self.depth > MAX_DEPTH:
            return DOTDOTDOT
        kind = _type(term)
        if kind == Term.DATUM:
            doc = self.datum(_datum(term))
            if not self.in_r_expr:
                doc = self.prepend_r_expr(doc)
        elif kind == Term.FUNCALL:
            doc = self.string_dots_together(term) if len(_args(term)) == 2 else self.toplevel_funcall(term)
        elif kind == Term.MAKE_ARRAY:
            self.in_r_expr = True
            doc = self.array(term)
            if not old_r_expr:
                doc = self.prepend_r_expr(doc)
        elif kind == Term.MAKE_OBJ:
            self.in_r_expr = True
            doc = self.natural_object(term) if old_r_expr else self.wrapped_object(term)
        elif kind == Term.FUNC:
            doc = self.function(term)
        elif kind == Term.VAR:
            doc = _text(print_var(_datum(_args(term)[0])))
        elif kind == Term.IMPLICIT_VAR:
            doc = self.prepend_r_dot(ROW)
        elif self.continues_string(term):
            doc = self.string_dots_together(term)
        elif _args(term) or kind not in _CONSTANTS:
            doc = self.standard_funcall(term)
        else:
            doc = self.prepend_r_dot(self.term_name(term))
        self.in_r_expr = old_r_expr
        self.depth -= 1
        return doc

    @staticmethod
    def continues_string(term) -> bool:
        kind = _type(term)
        if kind in (Term.TABLE, Term.FUNCALL):
            return len(_args(term)) == 2
        return kind not in _NOT_CHAINED

    @staticmethod
    def uses_rdot(term) -> bool:
        return _type(term) not in (Term.VAR, Term.DATUM)

    @staticmethod
    def term_name(term):
        return JS if _type(term) == Term.JAVASCRIPT else _text(_term_js_name(term))

    def array(self, term):
        old_r_expr = self.in_r_expr
        self.in_r_expr = True
        items = []
        for item in _args(term):
            if items:
                items.append(COMMA_LINEBREAK)
            items.append(self.visit(item))
        self.in_r_expr = old_r_expr
        return _concat(LBRACK, _nest(_concat(*items)), RBRACK)

    def natural_object(self, term):
        items = []
        for name, item in _optargs(term):
            if items:
                items.append(COMMA_LINEBREAK)
            items.append(_nc(_text('"%s":' % name), COND_LINEBREAK, self.visit(item)))
        return _concat(LBRACE, _nest(_concat(*items)), RBRACE)

    def wrapped_object(self, term):
        items = []
        for name, item in _optargs(term):
            if items:
                items.append(COMMA_LINEBREAK)
            items.append(_text('"%s"' % name))
            items.append(COMMA_LINEBREAK)
            items.append(self.visit(item))
        return self.prepend_r_obj(_nest(_concat(*items)))

    def datum(self, value):
        if value is None:
            return NIL
        if isinstance(value, bool):
            return TRUE if value else FALSE
        if isinstance(value, (int, float)):
            return _text(_number_text(value))
        if isinstance(value, str):
            return _text('"%s"' % value)
        if isinstance(value, list):
            items = []
            for item in value:
                if items:
                    items.append(COMMA_LINEBREAK)
                items.append(self.datum(item))
            return _concat(LBRACK, _nc(*items), RBRACK)
        if isinstance(value, dict):
            if value.get('$reql_type$') == 'BINARY':
                data = base64.b64encode(base64.b64decode(value.get('data', ''))).decode('ascii')
                return _concat(NODE_BUFFER, LPAREN, _nc(_text(data), COMMA_LINEBREAK, BASE64), RPAREN)
            if value.get('$reql_type$') == 'MINVAL':
                return self.prepend_r_dot(MINVAL)
            if value.get('$reql_type$') == 'MAXVAL':
                return self.prepend_r_dot(MAXVAL)
            items = [LBRACE]
            for position, key in enumerate(sorted(value)):
                if position:
                    items.append(COMMA_LINEBREAK)
                items.append(_nc(_text('"%s":' % key), COND_LINEBREAK, self.datum(value[key])))
            items.append(RBRACE)
            return _nest(_concat(*items))
        return _text(json.dumps(value))

    def optargs(self, term):
        items = []
        for name, item in _optargs(term):
            if items:
                items.append(COMMA_LINEBREAK)
            items.append(_nest(_concat(_text('"%s":' % _js_name(name)), COND_LINEBREAK, self.visit(item))))
        return _concat(LBRACE, _nest(_concat(*items)), RBRACE)

    def stringing(self, term, stack: list, state: dict):
        """One link of a method chain, pushed in reverse; returns the term it continues (or None)."""
        old_r_expr = self.in_r_expr
        kind = _type(term)
        arguments = _args(term)
        if kind == Term.BRACKET:
            stack.append(RPAREN)
            self.in_r_expr = True
            if _optargs(term):
                stack.extend([self.optargs(term), COND_LINEBREAK, COMMA])
            stack.append(self.visit(arguments[1]))
            self.in_r_expr = old_r_expr
            stack.append(LPAREN)
            state.update(dot=False, wrap=False)
            return arguments[0]
        if kind == Term.FUNCALL:
            stack.append(RPAREN)
            self.in_r_expr = True
            stack.append(_nest(self.visit(arguments[0])))
            self.in_r_expr = old_r_expr
            stack.extend([LPAREN, DO, DOT_LINEBREAK])
            state.update(dot=True, wrap=True)
            return arguments[1]
        if kind == Term.DATUM:
            self.in_r_expr = True
            stack.append(self.prepend_r_expr(self.datum(_datum(term))))
            self.in_r_expr = old_r_expr
            state.update(dot=False, wrap=False)
            return None
        if kind == Term.MAKE_OBJ:
            self.in_r_expr = True
            stack.append(self.wrapped_object(term))
            self.in_r_expr = old_r_expr
            state.update(dot=False, wrap=False)
            return None
        if kind == Term.VAR:
            stack.append(_text(print_var(_datum(arguments[0]))))
            state.update(dot=False, wrap=False)
            return None
        if kind == Term.IMPLICIT_VAR:
            stack.append(ROW)
            state.update(dot=False, wrap=True)
            return None
        stack.append(RPAREN)
        self.in_r_expr = True
        trailing_comma = False
        if _optargs(term):
            stack.append(self.optargs(term))
            trailing_comma = True
        if not arguments:
            self.in_r_expr = old_r_expr
            stack.extend([LPAREN, _text(_term_js_name(term))])
            state.update(dot=False, wrap=self.uses_rdot(term))
            return None
        if len(arguments) > 1:
            items = []
            for item in reversed(arguments[1:]):
                if items:
                    items.append(COMMA_LINEBREAK)
                items.append(self.visit(item))
            if trailing_comma:
                stack.append(COMMA_LINEBREAK)
            stack.append(_nest(self.reverse(items, False)))
        self.in_r_expr = old_r_expr
        stack.extend([LPAREN, _text(_term_js_name(term)), DOT_LINEBREAK])
        state.update(dot=True, wrap=self.uses_rdot(term))
        return arguments[0]

    def string_dots_together(self, term):
        stack: list = []
        state = {'dot': False, 'wrap': False}
        current = term
        while current is not None and self.continues_string(current):
            current = self.stringing(current, stack, state)
        if current is None:
            chain = self.reverse(stack, False)
            return self.prepend_r_dot(chain) if state['wrap'] else chain
        if self.uses_rdot(current):
            old = self.prepend_ok
            self.prepend_ok = False
            subdoc = self.visit(current)
            self.prepend_ok = old
            return self.prepend_r_dot(_concat(subdoc, self.reverse(stack, False)))
        return _nc(self.visit(current), self.reverse(stack, state['dot']))

    @staticmethod
    def reverse(stack: list, last_is_dot: bool):
        stack = list(stack)
        if last_is_dot:
            stack.pop()
            stack.append(JUSTDOT)
        return _concat(*reversed(stack))

    def toplevel_funcall(self, term):
        arguments = _args(term)
        parts = [DO, LPAREN]
        old_r_expr = self.in_r_expr
        self.in_r_expr = True
        items = []
        for item in arguments[1:]:
            if items:
                items.append(COMMA_LINEBREAK)
            items.append(self.visit(item))
        if items:
            items.append(COMMA_LINEBREAK)
        self.in_r_expr = old_r_expr
        parts.append(self.visit(arguments[0]))
        parts.append(_nest(_concat(*items)))
        parts.append(RPAREN)
        return self.prepend_r_dot(_concat(*parts))

    def standard_funcall(self, term):
        parts = [self.term_name(term)]
        old_r_expr = self.in_r_expr
        self.in_r_expr = True
        items = []
        for item in _args(term):
            if items:
                items.append(COMMA_LINEBREAK)
            items.append(self.visit(item))
        if _optargs(term):
            if items:
                items.append(COMMA_LINEBREAK)
            items.append(self.optargs(term))
        parts.append(self.wrap_parens(_concat(*items)))
        self.in_r_expr = old_r_expr
        if self.uses_rdot(term):
            return self.prepend_r_dot(_concat(*parts))
        return _nest(_concat(*parts))

    def prepend_r_dot(self, doc):
        if not self.prepend_ok:
            return doc
        return _concat(R, _nc(JUSTDOT, doc))

    @staticmethod
    def wrap_parens(doc):
        return _concat(LPAREN, _nest(doc), RPAREN)

    def prepend_r_expr(self, doc):
        return self.prepend_r_dot(_concat(EXPR, self.wrap_parens(doc)))

    def prepend_r_obj(self, doc):
        return self.prepend_r_dot(_concat(OBJECT, self.wrap_parens(doc)))

    def function(self, term):
        arguments = _args(term)
        params = arguments[0]
        if _type(params) == Term.MAKE_ARRAY or (_type(params) == Term.DATUM and isinstance(_datum(params), list)):
            numbers = [_datum(item) for item in _args(params)] if _type(params) == Term.MAKE_ARRAY else _datum(params)
            names = []
            for number in numbers:
                if names:
                    names.append(COMMA_LINEBREAK)
                names.append(_text(print_var(number)))
            arglist = _concat(LPAREN, _nest(_concat(*names)), RPAREN)
        else:
            arglist = self.visit(params)
        old_r_expr = self.in_r_expr
        self.in_r_expr = False
        body = _concat(RETURN, SP, _nest(self.visit(arguments[1])), SEMICOLON)
        self.in_r_expr = old_r_expr
        return _nc(LAMBDA_1, _nc(LAMBDA_2, SP, arglist, SP, LBRACE, UNCOND_LINEBREAK, body), UNCOND_LINEBREAK, RBRACE)


# -- layout (pprint.cc)

def _stream(doc, out: list) -> None:
    """The document as a flat stream of elements (iteratively: documents nest deeply)."""
    pending = [doc]
    while pending:
        item = pending.pop()
        kind = item[0]
        if kind == 'concat':
            pending.extend(reversed(item[1]))
        elif kind == 'group':
            out.append(['gbeg', None])
            pending.extend([('gend',), item[1]])
        elif kind == 'nest':
            out.append(['nbeg', None])
            out.append(['gbeg', None])
            pending.extend([('nend',), ('gend',), item[1]])
        elif kind == 'text':
            out.append(['text', None, item[1]])
        elif kind == 'cond':
            out.append(['cond', None, item[1], item[2], item[3]])
        elif kind == 'br':
            out.append(['crlf', None])
        else:
            out.append([kind, None])


def pretty_print(doc, width: int = WIDTH) -> str:
    """Lay a document out `width` columns wide."""
    elements: list = []
    _stream(doc, elements)
    # Positions of each element's end assuming no line breaks; a group's start gets its end's position.
    position = 0
    open_groups = []
    for element in elements:
        kind = element[0]
        if kind == 'text':
            position += len(element[2])
        elif kind == 'cond':
            position += len(element[2])
        if kind == 'gbeg':
            open_groups.append(element)
        elif kind == 'gend':
            element[1] = position
            open_groups.pop()[1] = position
        elif kind != 'nbeg':
            element[1] = position
    fitting, right_edge, hpos = 0, width, 0
    indent: list = []
    result = []
    for element in elements:
        kind = element[0]
        if kind == 'text':
            result.append(element[2])
            hpos += len(element[2])
        elif kind == 'crlf':
            current = indent[-1] if indent else 0
            result.append('\n' + ' ' * current)
            fitting = 0
            hpos = current
            right_edge = (width - hpos + element[1]) % _SIZE_T
        elif kind == 'cond':
            end, small, cont, tail = element[1:]
            if fitting == 0:
                current = indent[-1] if indent else 0
                result.append(tail + '\n' + ' ' * current + cont)
                hpos = current + len(cont)
                right_edge = (width - hpos + end) % _SIZE_T
            else:
                result.append(small)
                hpos += len(small)
        elif kind == 'gbeg':
            if fitting != 0 or element[1] <= right_edge:
                fitting += 1
            else:
                fitting = 0
        elif kind == 'gend':
            if fitting != 0:
                fitting -= 1
        elif kind == 'nbeg':
            indent.append(hpos)
        elif kind == 'nend':
            indent.pop()
    return ''.join(result)


def function_text(source) -> str:
    """`function(var1) { return var1("field"); }` for a FUNC term's JSON, as print_js_function writes it."""
    try:
        arguments = _args(source)
        params = arguments[0]
        numbers = [_datum(item) for item in _args(params)] if _type(params) == Term.MAKE_ARRAY else _datum(params)
        body = pretty_print(_Printer().visit(arguments[1]))
        return 'function(%s) { return %s; }' % (', '.join(print_var(number) for number in numbers), body)
    except (IndexError, KeyError, TypeError, ValueError, AttributeError):
        return 'non-printable function (%s)' % json.dumps(source)
