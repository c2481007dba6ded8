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

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

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

    __slots__ = ("environment", "name", "steps", "filters", "negate")

    def __init__(self, environment: Environment, name: str, steps: tuple[tuple[str, Any], ...],
                 filters: tuple[_Filter, ...]) -> None:
        self.environment = environment
        self.name = name
        self.steps = steps
        self.filters = filters
        self.negate = False

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
        self._scan(environment.parse(tree_source))
        #: shape (truth of each test) -> (text pieces, slot index after each piece but the last)
        self.layouts: dict[tuple[bool, ...], tuple[tuple[str, ...], tuple[int, ...]]] = {}
        #: shapes already compared with a full render
        self.checked: set[tuple[bool, ...]] = set()
        #: the plan disagreed with a full render once: not used again
        self.broken = False

    @classmethod
    def build(cls, environment: Environment, source: str, constants: dict[str, Any], per_email: Iterable[str],
              render: Callable[[Any, dict[str, Any]], str]) -> SlotPlan | None:
        """The plan of ``source``, or None when a per-email value is used in a way it cannot take."""
        if "\x00" in source or callable(environment.autoescape) or environment.finalize is not None:
            return None
        try:
            return cls(environment, source, constants, frozenset(per_email), render)
        except _NotPlannable:
            return None

    # -- building ---------------------------------------------------------------------------

    def _scan(self, tree: nodes.Template) -> None:
        """Collect the slots and tests in the order :meth:`_transform` numbers them."""
        self._transform(tree, collect=True, shape=())

    def _transform(self, tree: nodes.Template, collect: bool, shape: tuple[bool, ...]) -> nodes.Template:
        counters = {"slot": 0, "test": 0}

        def visit(node: nodes.Node) -> None:
            if isinstance(node, nodes.Output):
                for index, child in enumerate(node.nodes):
                    if isinstance(child, nodes.TemplateData) or not self._uses_per_email(child):
                        visit(child)
                        continue
                    slot = self._slot(child)
                    if collect:
                        self.slots.append(slot)
                    node.nodes[index] = nodes.Const(f"\x00{counters['slot']}\x00")
                    counters["slot"] += 1
                return
            if isinstance(node, nodes.If):
                if self._uses_per_email(node.test):
                    test: Any = node.test
                    negate = isinstance(test, nodes.Not)
                    slot = self._slot(test.node if negate else test)
                    slot.negate = negate
                    if collect:
                        self.tests.append(slot)
                        node.test = nodes.Const(True)
                    else:
                        node.test = nodes.Const(shape[counters["test"]])
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

    def _layout(self, shape: tuple[bool, ...]) -> tuple[tuple[str, ...], tuple[int, ...]]:
        layout = self.layouts.get(shape)
        if layout is None:
            if len(self.layouts) >= MAX_SHAPES:
                raise _Fallback
            tree = self._transform(self.environment.parse(self.source), collect=False, shape=shape)
            code = self.environment.compile(tree)
            template = self.environment.template_class.from_code(
                self.environment, code, self.environment.make_globals(None), None)
            parts = _MARK.split(self._render(template, self.constants))
            layout = self.layouts[shape] = (tuple(parts[0::2]), tuple(int(i) for i in parts[1::2]))
        return layout

    # -- filling ----------------------------------------------------------------------------

    def shape(self, context: dict[str, Any]) -> tuple[bool, ...]:
        return tuple(bool(test.value(context)) != test.negate for test in self.tests)

    def fill(self, context: dict[str, Any], full: Callable[[], str]) -> str:
        """This email's text. ``full`` renders it with Jinja: used where the plan cannot make it,
        and once per shape to check the plan (a plan that disagrees is not used again)."""
        if self.broken:
            return full()
        try:
            shape = self.shape(context) if self.tests else ()
            pieces, slots = self._layout(shape)
            values: dict[int, str] = {}
            out = [pieces[0]]
            for index, piece in zip(slots, pieces[1:]):
                text = values.get(index)
                if text is None:
                    value = self.slots[index].value(context)
                    text = values[index] = str(escape(value)) if self.autoescape else str(value)
                out.append(text)
                out.append(piece)
        except _Fallback:
            return full()
        filled = "".join(out)
        if shape not in self.checked:
            expected = full()
            if filled != expected:
                self.broken = True
                log.warning("slot plan of a template disagrees with its full render; rendering it in full")
                return expected
            self.checked.add(shape)
        return filled
