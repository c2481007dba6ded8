"""Slot plans: a step's template rendered once per step, each email's own values filled in.

A nurture email is one step's template with a few values of its own: the lead's name and
company, a tracked URL per link, the unsubscribe URL. A full Jinja render per email walks the
whole compiled template again (context, generator, escaping of every output) for a handful of
values. A plan renders the template once per step with a marker where each per-email value
goes, splits the result at the markers, and per email evaluates only those values, exactly as
the compiled template would: the same sandboxed attribute and item lookups, the same filter
functions, the same escaping. Conditions on per-email values (``{% if lead.fields.industry %}``)
make *shapes*: the template is rendered once per combination of their truth values met.

What a plan takes, found in the template's syntax tree: a per-email value written out
(``{{ lead.company|default('your team', true) }}``, ``{{ link('report') }}``,
``{{ lead.fields['region'] }}``: a name and its attribute and constant-item lookups, or a
call of a name with constant arguments; then filters from :data:`PURE_FILTERS` with constant arguments) and an ``if`` or
``elif`` whose test is such a value or its ``not``. Any other use of a per-email name (a loop
over it, a comparison, an ``or``, a ``set``, a macro call) leaves the step without a plan: it
is rendered by Jinja as before, only slower. ``Renderer`` also checks the first email of each
shape against a full render and drops a plan that disagrees (``render.py``).
"""
from __future__ import annotations

import binascii
import logging
import re
from collections.abc import Callable, Hashable, Iterable
from typing import Any, NamedTuple

from jinja2 import Environment, nodes
from jinja2.utils import _PassArg
from markupsafe import escape

log = logging.getLogger(__name__)

#: Filters a plan may apply to a per-email value: pure functions of the value and constant
#: arguments (no ``random``, nothing that needs the render's context).
PURE_FILTERS = frozenset({
    "capitalize", "center", "d", "default", "e", "escape", "first", "float", "forceescape", "format",
    "indent", "int", "last", "length", "lower", "replace", "round", "string", "striptags", "title", "trim",
    "truncate", "upper", "urlencode", "wordcount", "wordwrap",
})
_MARK = re.compile("\x00(\\d+)\x00")
#: The variable a test of a per-email value becomes in a plan's template: set per shape.
SHAPE_VARIABLE = "_nurture_shape_{}"
#: More shapes than this for one step (many independent conditions): no plan, Jinja renders.
MAX_SHAPES = 16


#: A filter as a plan calls it: function, what it is passed first (None: the value), arguments.
_Filter = tuple[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]]
#: Nodes whose output is filtered, captured or escaped otherwise: a marker inside one would be
#: transformed where the value would be, so a per-email value in one leaves the step unplanned.
_CAPTURING = (nodes.FilterBlock, nodes.AssignBlock, nodes.Macro, nodes.CallBlock, nodes.ScopedEvalContextModifier,
              nodes.EvalContextModifier)


class _NotPlannable(Exception):
    pass


class _Slot:
    """One per-email expression: a root name, lookups, then filters."""

    __slots__ = ("environment", "name", "steps", "filters", "negate", "key")

    def __init__(self, environment: Environment, name: str, steps: tuple[tuple[str, Any], ...],
                 filters: tuple[_Filter, ...]) -> None:
        self.environment = environment
        self.name = name
        self.steps = steps
        self.filters = filters
        self.negate = False
        #: Equal keys, equal values for one email: the subject, HTML and text plans of a step
        #: evaluate an expression they share once (None: not shared).
        self.key: int | None = None
        expression = (type(environment), name, steps, tuple((f, p, a, tuple(sorted(k.items()))) for f, p, a, k in filters))
        try:
            # A small int per expression: the memo is looked up a dozen times an email, and a
            # tuple's hash is computed again at each lookup.
            self.key = _EXPRESSIONS.setdefault(expression, len(_EXPRESSIONS))
        except TypeError:  # an unhashable constant argument: evaluated by each plan
            pass

    def value(self, context: dict[str, Any]) -> Any:
        environment = self.environment
        value = context.get(self.name, _Missing)
        if value is _Missing:
            value = environment.undefined(name=self.name)
        for kind, argument in self.steps:
            if kind == "attr":
                value = environment.getattr(value, argument)
            elif kind == "item":
                value = environment.getitem(value, argument)
            else:  # call, with constant arguments; a sandbox refuses an unsafe callable here too
                if not getattr(environment, "is_safe_callable", lambda _: True)(value) or _PassArg.from_obj(value):
                    raise _Fallback
                value = value(*argument)
        for function, passed, args, kwargs in self.filters:
            value = function(value, *args, **kwargs) if passed is None else function(passed, value, *args, **kwargs)
        return value


class _Missing:
    pass


#: Every slot expression met, numbered (see ``_Slot.key``).
_EXPRESSIONS: dict[Hashable, int] = {}


class _Fallback(Exception):
    """A value the plan cannot produce as Jinja would: render this email with Jinja."""


class SlotPlan:
    """The template of one step as text pieces and per-email slots, one layout per shape."""

    def __init__(self, environment: Environment, tree_source: str, constants: dict[str, Any],
                 per_email: frozenset[str], render: Callable[[Any, dict[str, Any]], str]) -> None:
        self.environment = environment
        self.source = tree_source
        self.constants = constants
        self.per_email = per_email
        self._render = render
        self.slots: list[_Slot] = []
        self.tests: list[_Slot] = []
        self.autoescape = bool(environment.autoescape) if not callable(environment.autoescape) else None
        self._tree: nodes.Template | None = self._transform(environment.parse(tree_source))
        self._template: Any = None  # compiled from the tree when the first email needs it
        #: shape (truth of each test) -> its text pieces and the slot after each piece but the last
        self.layouts: dict[tuple[bool, ...], _Layout] = {}
        #: shapes already compared with a full render
        self.checked: set[tuple[bool, ...]] = set()
        #: the plan disagreed with a full render once: not used again
        self.broken = False

    @classmethod
    def build(cls, environment: Environment, source: str, constants: dict[str, Any], per_email: Iterable[str],
              render: Callable[[Any, dict[str, Any]], str]) -> SlotPlan | None:
        """The plan of ``source``, or None when a per-email value is used in a way it cannot take."""
        if ("\x00" in source or SHAPE_VARIABLE[:-4] in source or callable(environment.autoescape)
                or environment.finalize is not None):
            return None
        try:
            return cls(environment, source, constants, frozenset(per_email), render)
        except _NotPlannable:
            return None

    # -- building ---------------------------------------------------------------------------

    def _transform(self, tree: nodes.Template) -> nodes.Template:
        """Collect the slots and tests; in the tree, each slot becomes its marker and each test
        the shape variable of its index (:data:`SHAPE_VARIABLE`)."""
        counters = {"slot": 0, "test": 0}

        def visit(node: nodes.Node) -> None:
            if isinstance(node, nodes.Output):
                for index, child in enumerate(node.nodes):
                    if isinstance(child, nodes.TemplateData) or not self._uses_per_email(child):
                        visit(child)
                        continue
                    self.slots.append(self._slot(child))
                    node.nodes[index] = nodes.Const(f"\x00{counters['slot']}\x00")
                    counters["slot"] += 1
                return
            if isinstance(node, nodes.If):
                if self._uses_per_email(node.test):
                    test: Any = node.test
                    negate = isinstance(test, nodes.Not)
                    slot = self._slot(test.node if negate else test)
                    slot.negate = negate
                    self.tests.append(slot)
                    node.test = nodes.Name(SHAPE_VARIABLE.format(counters["test"]), "load")
                    counters["test"] += 1
                else:
                    visit(node.test)
                for statement in (*node.body, *node.elif_, *node.else_):
                    visit(statement)
                return
            if isinstance(node, nodes.Name) and node.name in self.per_email:
                raise _NotPlannable(node.name)  # any other use: a loop, a comparison, a ``set``
            if isinstance(node, _CAPTURING) and self._uses_per_email(node):
                raise _NotPlannable(type(node).__name__)
            for inner in node.iter_child_nodes():
                visit(inner)

        visit(tree)
        return tree

    def _uses_per_email(self, node: nodes.Node) -> bool:
        if isinstance(node, nodes.Name):
            return node.name in self.per_email
        return any(n.name in self.per_email for n in node.find_all(nodes.Name))

    def _slot(self, node: Any) -> _Slot:  # a jinja2 expression node
        filters: list[_Filter] = []
        while isinstance(node, nodes.Filter):
            if node.name not in PURE_FILTERS or node.dyn_args or node.dyn_kwargs or node.node is None:
                raise _NotPlannable(node.name)
            function = self.environment.filters[node.name]
            args = tuple(self._constant(a) for a in node.args)
            kwargs = {str(k.key): self._constant(k.value) for k in node.kwargs}
            passed = _PassArg.from_obj(function)
            if passed is _PassArg.context:
                raise _NotPlannable(node.name)
            first: Any = None  # the value comes first
            if passed is _PassArg.environment:
                first = self.environment
            elif passed is _PassArg.eval_context:
                first = nodes.EvalContext(self.environment)
            filters.append((function, first, args, kwargs))
            node = node.node
        filters.reverse()
        steps: list[tuple[str, Any]] = []
        while True:
            if isinstance(node, nodes.Getattr):
                steps.append(("attr", node.attr))
                node = node.node
            elif isinstance(node, nodes.Getitem):
                steps.append(("item", self._constant(node.arg)))
                node = node.node
            elif isinstance(node, nodes.Call) and not steps and isinstance(node.node, nodes.Name):
                if node.kwargs or node.dyn_args or node.dyn_kwargs:
                    raise _NotPlannable("call")
                steps.append(("call", tuple(self._constant(a) for a in node.args)))
                node = node.node
            else:
                break
        if not isinstance(node, nodes.Name) or node.name not in self.per_email:
            raise _NotPlannable(type(node).__name__)
        steps.reverse()
        return _Slot(self.environment, node.name, tuple(steps), tuple(filters))

    def _constant(self, node: Any) -> Any:
        if self._uses_per_email(node):
            raise _NotPlannable("per-email argument")
        try:
            return node.as_const(nodes.EvalContext(self.environment))
        except nodes.Impossible:
            raise _NotPlannable("argument not constant") from None

    def _layout(self, shape: tuple[bool, ...]) -> _Layout:
        layout = self.layouts.get(shape)
        if layout is None:
            if len(self.layouts) >= MAX_SHAPES:
                raise _Fallback
            if self._template is None:
                assert self._tree is not None
                self._template = self.environment.template_class.from_code(
                    self.environment, self.environment.compile(self._tree), self.environment.make_globals(None), None)
                self._tree = None
            variables = {SHAPE_VARIABLE.format(i): truth for i, truth in enumerate(shape)}
            parts = _MARK.split(self._render(self._template, {**self.constants, **variables}))
            layout = self.layouts[shape] = _Layout(tuple(parts[0::2]), tuple(int(i) for i in parts[1::2]))
        return layout

    # -- filling ----------------------------------------------------------------------------

    def shape(self, context: dict[str, Any], memo: dict[Hashable, Any]) -> tuple[bool, ...]:
        return tuple(bool(self._value(test, context, memo)) != test.negate for test in self.tests)

    def fill(self, context: dict[str, Any], full: Callable[[], str], memo: dict[Hashable, Any],
             body: bool = True) -> Filled:
        """This email's text and, for a ``body``, where it can be made, the text quoted-printable.

        ``full`` renders it with Jinja: used where the plan cannot make it, and once per shape
        to check the plan (a plan that disagrees is not used again). ``memo``: what the step's
        other plans already evaluated or encoded for this email.
        """
        if self.broken:
            return Filled(full(), None)
        try:
            shape = self.shape(context, memo) if self.tests else ()
            layout = self._layout(shape)
            texts: dict[int, str] = {}
            for index in layout.used:
                value = self._value(self.slots[index], context, memo)
                texts[index] = str(escape(value)) if self.autoescape else str(value)
        except Exception:
            # _Fallback, or an error: the plan evaluates every test of the shape up front, also
            # one nested in a branch Jinja would not enter; the full render raises what Jinja
            # raises, and only that.
            return Filled(full(), None)
        out = layout.frame[:]
        out[1::2] = [texts[index] for index in layout.slots]
        filled = "".join(out)
        if shape not in self.checked:
            expected = full()
            if filled != expected:
                self.broken = True
                log.warning("slot plan of a template disagrees with its full render; rendering it in full")
                return Filled(expected, None)
            self.checked.add(shape)
        return Filled(filled, layout.quoted_printable(texts, memo) if body else None)

    @staticmethod
    def _value(slot: _Slot, context: dict[str, Any], memo: dict[Hashable, Any]) -> Any:
        if slot.key is None:
            return slot.value(context)
        value = memo.get(slot.key, _Missing)
        if value is _Missing:
            value = memo[slot.key] = slot.value(context)
        return value


class Filled(NamedTuple):
    text: str
    #: The text as a quoted-printable body (UTF-8, CRLF): None when the plan did not make it.
    quoted_printable: bytes | None


_SOFT_BREAK = b"=\r\n"
_QP_LINE = 76


def _qp(text: str) -> bytes:
    """``text`` as quoted-printable lines that each end in a line break, soft where the text has
    none: such pieces join into one body that decodes to their concatenation, CRLF line breaks,
    no line over 76 characters (RFC 2045 §6.7), and none starting with a dot (written ``=2E``),
    so SMTP has no dot to double in a body made of them."""
    if text.isascii() and text.isprintable() and "=" not in text and text[-1:] != " ":
        # What most values are (a name, a tracked URL): each character stands for itself, so
        # the text is only cut into lines.
        data = text.encode("ascii")
        if len(data) < _QP_LINE:
            if data[:1] != b".":
                return data + _SOFT_BREAK
        elif b"." not in data[::_QP_LINE - 1]:  # the first character of each line
            step = _QP_LINE - 1
            return _SOFT_BREAK.join([data[i:i + step] for i in range(0, len(data), step)]) + _SOFT_BREAK
    if text.endswith("\n"):
        encoded = binascii.b2a_qp(text.replace("\n", "\r\n").encode("utf-8"), istext=True)
    else:
        # Given a last line break, b2a_qp writes every break CRLF (it copies the first one it
        # sees) and encodes the white space before it; that break then becomes a soft one.
        encoded = binascii.b2a_qp((text + "\n").replace("\n", "\r\n").encode("utf-8"), istext=True)
        encoded = encoded[:-2] + _SOFT_BREAK
    return _lines(encoded)


def _lines(encoded: bytes) -> bytes:
    """Lines over 76 characters cut with soft breaks, never inside an ``=XX`` escape (b2a_qp
    writes 77 when it encodes white space at the end of a full line, and a soft break added
    above can make one 77 too), and a dot that starts a line written ``=2E``."""
    if len(encoded) <= _QP_LINE and encoded[:1] != b"." and b"\n." not in encoded:
        return encoded  # a short value: nothing to cut or escape
    lines = encoded.split(b"\r\n")
    if max(map(len, lines)) <= _QP_LINE and not any(line[:1] == b"." for line in lines):
        return encoded
    out = []
    for line in lines:
        if line[:1] == b".":
            line = b"=2E" + line[1:]
        while len(line) > _QP_LINE:
            cut = _QP_LINE - 1
            if line[cut - 1:cut] == b"=":
                cut -= 1
            elif line[cut - 2:cut - 1] == b"=":
                cut -= 2
            out.append(line[:cut] + b"=")
            line = line[cut:]
            if line[:1] == b".":
                line = b"=2E" + line[1:]
        out.append(line)
    return b"\r\n".join(out)


class _Layout:
    """One shape of a plan: the text pieces between slots, and the pieces quoted-printable."""

    __slots__ = ("pieces", "slots", "used", "frame", "encoded")

    def __init__(self, pieces: tuple[str, ...], slots: tuple[int, ...]) -> None:
        self.pieces = pieces
        self.slots = slots
        self.used = tuple(sorted(set(slots)))
        #: The pieces at even places, room for the slots' texts at odd ones: copied per email.
        self.frame: list[str] = [text for piece in pieces for text in (piece, "")][:-1]
        # A lone CR would pair with a line feed across a piece boundary differently than in the
        # whole text: such a template gets no quoted-printable body (the writer encodes it whole).
        self.encoded: list[bytes] | None = None
        if not any("\r" in p for p in pieces):
            self.encoded = [code for piece in pieces for code in (_qp(piece) if piece else b"", b"")][:-1]

    def quoted_printable(self, texts: dict[int, str], memo: dict[Hashable, Any]) -> bytes | None:
        if self.encoded is None:
            return None
        encoded: dict[int, bytes] = {}
        for index, text in texts.items():
            key = ("qp", text)  # the HTML and the text body mostly share their links' texts
            code = memo.get(key)
            if code is None:
                if "\r" in text:
                    return None
                code = memo[key] = _qp(text) if text else b""
            encoded[index] = code
        out = self.encoded[:]
        out[1::2] = [encoded[index] for index in self.slots]
        return b"".join(out)
