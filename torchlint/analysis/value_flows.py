"""Which values of a file may be loaders, or modules of known mode? Pre-checks of TL104 and TL105.

**Loaders** (:class:`LoaderFlow`): could a ``for`` loop of the file run over a DataLoader's batches?

Both rules act only on what the program model calls a loop over batches: a ``for`` whose
iterable it evaluates to a loader (``LoaderV``, or ``iter()`` of one), directly or inside
``enumerate``/``iter``/``tqdm``. The model knows a value as a loader only if it is built by
``DataLoader(...)``, named so (an identifier saying "loader"), or reached from one of those
through bindings, containers, subscripts, calls of the file's functions (arguments and
returns) and attributes. This pass follows the same ways on CPython's tree without regard
to order, so it says "no" only where the model cannot say "yes": a file full of import
loaders and ``make_loader`` closures (torch's own inductor) but no loop over a data
loader is not parsed by libcst for these rules.

Names are variables of the scope Python resolves them to (:class:`_Facts`); attributes are
known by name alone. What it over-approximates, on purpose: a variable bound anywhere in
its scope to a loader-like value is one everywhere in it, an attribute bound anywhere to
one is one on any object; a name saying "loader" is a loader wherever the model guesses
from a name (a parameter, a name bound nowhere); a call through a variable that may hold
a function of the file (:class:`CallableFlow`) may return what any function used as a
value returns, and its arguments (and ``functools.partial``'s) may reach any of them.

**Modules of known mode** (:class:`ModeFlow`): TL105 acts on a call of a module whose
train/eval mode the model knows: one built in the file (a ``torch.nn`` class, a class of
the file: new modules train) or switched with ``train()``/``eval()`` (the statement
``net.eval()`` makes ``net`` one, and so does passing ``net`` to a function of the file
that switches modes). The same flow, with these sources, tells where such a module may be
called; a module only named so (``model``) has no known mode.
"""

from __future__ import annotations

import ast
import builtins

from torchlint.gates import ImportTable, dotted_text, per_lint

# Calls whose iteration the model sees through (``_element``): the loop runs over their first argument.
_WRAPPERS = ("enumerate", "iter")
# Methods a call may reach when its callee is a module (the model passes the arguments on).
_CALLED_THROUGH = ("forward", "__call__")
_CONSTRUCTORS = ("__init__", "__new__", "__post_init__")
# Library calls whose value is their first argument's to the model (or an iterator over it).
_FIRST_ARGUMENT = ("iter", "compile", "script")
_FIRST_ARGUMENT_QUALIFIED = ("builtins.iter", "torch.compile", "torch.jit.script")


def _says_loader(identifier: str) -> bool:
    return "loader" in identifier.lower()


# What a flow says holds a value: a variable (scope index, name; 0 is the module) or, by its
# name alone, an attribute.
Key = tuple[int, str] | str

_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
# Fields that hold no node worth visiting (operators, contexts, names and numbers); the visit
# skips values that are not nodes all the same (_FIELDS of a str is empty).
_NOT_NODES = frozenset({"ctx", "op", "ops", "id", "attr", "name", "names", "module", "level", "arg", "simple", "conversion", "kind", "is_async", "type_comment", "type_ignores", "kwd_attrs", "rest"})
_FIELDS: dict[type, tuple[str, ...]] = {ast.Constant: (), ast.MatchSingleton: ()}
# The nodes _Facts reads more of than their children (Name, Attribute and Call aside).
_SPECIAL = frozenset(
    {ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, *_COMPREHENSIONS, ast.Assign, ast.AnnAssign, ast.AugAssign,
     ast.With, ast.AsyncWith, ast.NamedExpr, ast.For, ast.AsyncFor, ast.Return, ast.Yield, ast.YieldFrom, ast.Global,
     ast.Nonlocal, ast.Import, ast.ImportFrom, ast.ExceptHandler, ast.Match}
)  # fmt: skip


class _Facts:
    """What the flows read of a tree, gathered in one traversal (shared by the flows of one lint).

    A name is a variable of the scope that binds it, as Python resolves it (locals, enclosing
    functions, the module; ``global``/``nonlocal``): the ``x`` of one function is not another's.
    An attribute is known by its name alone, whatever its object."""

    def __init__(self, tree: ast.Module) -> None:
        self.params: dict[str, list[Key]] = {}  # def name -> its parameters
        self.classes: set[str] = set()
        self.variables: set[str] = set()  # identifiers bound by assignment, and parameters' names
        self.lambda_params: list[Key] = []
        self.loops: list[ast.expr] = []  # the iterables of for loops
        self.bindings: list[tuple[ast.expr, ast.expr]] = []  # (target, value)
        self.defaults: list[tuple[list[Key], ast.expr]] = []
        self.returns: list[tuple[str | None, ast.expr]] = []  # (def name, or None for a lambda; value)
        self.calls: list[ast.Call] = []
        self.selves: list[Key] = []  # first parameters of the methods of classes with a base
        self.receivers: list[Key] = []  # first parameters of the methods of any class
        self.keys: dict[int, Key] = {}  # id of each Name node -> its variable
        # Scopes: 0 is the module; a def, lambda, class or comprehension opens one.
        self._parent: list[int] = [-1]
        self._kind: list[str] = ["module"]  # module, def, class, comprehension
        self._local: list[set[str]] = [set()]
        self._declared: list[dict[str, str]] = [{}]  # name -> "global" / "nonlocal"
        # Names the program model sees bound in a scope (its Scope.scan: assignments, for and with
        # targets, imports, defs, classes, except names), and parameters: a name it sees bound and
        # not a parameter is never guessed from the name alone (see guessed()).
        self._bound: list[set[str]] = [set()]
        self._params: list[set[str]] = [set()]
        self._imported: list[set[str]] = [set()]  # names bound by an import (and maybe otherwise too)
        self.assigned_dotted: set[str] = set()  # ``torch.x = ...``: dotted targets
        based: dict[int, bool] = {}  # class scope -> has a base
        names: list[tuple[ast.Name, int]] = []
        values: set[str] = set()  # identifiers read other than as a call's callee
        callees: set[int] = set()
        # (node, name of the def whose own body holds it: None at module level, "" in a lambda, scope)
        todo: list[tuple[ast.AST, str | None, int]] = [(tree, None, 0)]
        pop, push = todo.pop, todo.append
        while todo:
            node, owner, scope = pop()
            t = type(node)
            if t is ast.Name:
                names.append((node, scope))  # type: ignore[arg-type]
                if type(node.ctx) is not ast.Load:  # type: ignore[attr-defined]
                    self._local[scope].add(node.id)  # type: ignore[attr-defined]
                if id(node) not in callees:
                    values.add(node.id)  # type: ignore[attr-defined]
                continue
            if t is ast.Attribute:
                if id(node) not in callees:
                    values.add(node.attr)  # type: ignore[attr-defined]
                push((node.value, owner, scope))  # type: ignore[attr-defined]
                continue
            if t is ast.Call:
                self.calls.append(node)  # type: ignore[arg-type]
                callees.add(id(node.func))  # type: ignore[attr-defined]
            if t in _SPECIAL:  # (the other nodes: only their children matter)
                if t is ast.FunctionDef or t is ast.AsyncFunctionDef or t is ast.Lambda:
                    args = node.args  # type: ignore[attr-defined]
                    inner_scope = self._open(scope, "def")
                    pnames = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg) if a is not None]
                    self._local[inner_scope].update(pnames)
                    self._params[inner_scope].update(pnames)
                    pkeys: list[Key] = [(inner_scope, n) for n in pnames]
                    self.variables.update(pnames)
                    # Defaults, annotations and decorators belong to the enclosing scope.
                    for default in (*args.defaults, *(d for d in args.kw_defaults if d is not None)):
                        self.defaults.append((pkeys, default))
                        push((default, owner, scope))
                    if t is ast.Lambda:
                        self.lambda_params.extend(pkeys)
                        self.returns.append((None, node.body))  # type: ignore[attr-defined]
                        push((node.body, "", inner_scope))  # type: ignore[attr-defined]
                        continue
                    self._local[scope].add(node.name)  # type: ignore[attr-defined]
                    self._bound[scope].add(node.name)  # type: ignore[attr-defined]
                    self.params.setdefault(node.name, []).extend(pkeys)  # type: ignore[attr-defined]
                    if self._kind[scope] == "class" and pkeys:
                        self.receivers.append(pkeys[0])
                        if based[scope]:
                            self.selves.append(pkeys[0])
                    for item in node.decorator_list:  # type: ignore[attr-defined]
                        push((item, owner, scope))
                    for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
                        if a is not None and a.annotation is not None:
                            push((a.annotation, owner, scope))
                    if node.returns is not None:  # type: ignore[attr-defined]
                        push((node.returns, owner, scope))  # type: ignore[attr-defined]
                    for item in node.body:  # type: ignore[attr-defined]
                        push((item, node.name, inner_scope))  # type: ignore[attr-defined]
                    continue
                if t is ast.ClassDef:
                    self.classes.add(node.name)  # type: ignore[attr-defined]
                    self._local[scope].add(node.name)  # type: ignore[attr-defined]
                    self._bound[scope].add(node.name)  # type: ignore[attr-defined]
                    inner_scope = self._open(scope, "class")
                    based[inner_scope] = bool(node.bases or node.keywords)  # type: ignore[attr-defined]
                    for item in (*node.bases, *node.keywords, *node.decorator_list):  # type: ignore[attr-defined]
                        push((item, owner, scope))
                    for item in node.body:  # type: ignore[attr-defined]
                        push((item, None, inner_scope))
                    continue
                if t in _COMPREHENSIONS:
                    generators = node.generators  # type: ignore[attr-defined]
                    inner_scope = self._open(scope, "comprehension")
                    push((generators[0].iter, owner, scope))  # the first iterable is the enclosing scope's
                    for i, gen in enumerate(generators):
                        self.bindings.append((gen.target, gen.iter))
                        push((gen.target, owner, inner_scope))
                        if i:
                            push((gen.iter, owner, inner_scope))
                        for cond in gen.ifs:
                            push((cond, owner, inner_scope))
                    for field in ("elt", "key", "value"):
                        item = getattr(node, field, None)
                        if item is not None:
                            push((item, owner, inner_scope))
                    continue
                if t is ast.Assign:
                    for target in node.targets:  # type: ignore[attr-defined]
                        self.bindings.append((target, node.value))  # type: ignore[attr-defined]
                        self._bound[scope].update(_names(target))
                        self._dotted_targets(target)
                elif t is ast.AnnAssign or t is ast.AugAssign:
                    if node.value is not None:  # type: ignore[attr-defined]
                        self.bindings.append((node.target, node.value))  # type: ignore[attr-defined]
                    self._bound[scope].update(_names(node.target))  # type: ignore[attr-defined]
                    self._dotted_targets(node.target)  # type: ignore[attr-defined]
                elif t is ast.With or t is ast.AsyncWith:
                    for item in node.items:  # type: ignore[attr-defined]
                        if item.optional_vars is not None:
                            self._bound[scope].update(_names(item.optional_vars))
                elif t is ast.NamedExpr:
                    self.bindings.append((node.target, node.value))  # type: ignore[attr-defined]
                    # (x := v) binds x in the scope around any comprehensions it is in.
                    outer = scope
                    while self._kind[outer] == "comprehension":
                        outer = self._parent[outer]
                    push((node.target, owner, outer))  # type: ignore[attr-defined]
                    push((node.value, owner, scope))  # type: ignore[attr-defined]
                    continue
                elif t is ast.For or t is ast.AsyncFor:
                    self.loops.append(node.iter)  # type: ignore[attr-defined]
                    self.bindings.append((node.target, node.iter))  # type: ignore[attr-defined]
                    self._bound[scope].update(_names(node.target))  # type: ignore[attr-defined]
                elif t is ast.Return or t is ast.Yield or t is ast.YieldFrom:
                    if node.value is not None and owner is not None:  # type: ignore[attr-defined]
                        self.returns.append((owner or None, node.value))  # type: ignore[attr-defined]
                elif t is ast.Global or t is ast.Nonlocal:
                    kind = "global" if t is ast.Global else "nonlocal"
                    for name in node.names:  # type: ignore[attr-defined]
                        self._declared[scope][name] = kind
                elif t is ast.Import or t is ast.ImportFrom:
                    for alias in node.names:  # type: ignore[attr-defined]
                        if alias.name != "*":
                            self._local[scope].add(alias.asname or alias.name.split(".")[0])
                            self._imported[scope].add(alias.asname or alias.name.split(".")[0])
                elif t is ast.ExceptHandler:
                    if node.name:  # type: ignore[attr-defined]
                        self._local[scope].add(node.name)  # type: ignore[attr-defined]
                        self._bound[scope].add(node.name)  # type: ignore[attr-defined]
                elif t is ast.Match:
                    for sub in ast.walk(node):
                        name = getattr(sub, "name", None) if type(sub) in (ast.MatchAs, ast.MatchStar) else getattr(sub, "rest", None)
                        if isinstance(name, str):
                            capture = ast.Name(name, ast.Store())
                            names.append((capture, scope))
                            self._local[scope].add(name)
                            self.bindings.append((capture, node.subject))  # type: ignore[attr-defined]
            fields = _FIELDS.get(t)
            if fields is None:
                fields = _FIELDS[t] = tuple(f for f in t._fields if f not in _NOT_NODES) if issubclass(t, ast.AST) else ()
            for field in fields:
                value = getattr(node, field, None)
                if type(value) is list:
                    for item in value:
                        if item is not None:
                            push((item, owner, scope))
                elif value is not None:
                    push((value, owner, scope))
        resolved: dict[tuple[str, int], Key] = {}
        keys = self.keys
        for node, scope in names:
            k = resolved.get((node.id, scope))
            if k is None:
                k = resolved[(node.id, scope)] = self._resolve(node.id, scope)
            keys[id(node)] = k
        for target, _ in self.bindings:
            self.variables.update(_names(target, attributes=True))
        # Functions used as values (callbacks, ``partial``, returned closures): a call through a
        # variable may reach them.
        self.used_as_values = values & self.params.keys()
        self.classes_as_values = values & self.classes

    def _dotted_targets(self, target: ast.expr) -> None:
        t = type(target)
        if t is ast.Attribute:
            d = dotted_text(target)
            if d is not None:
                self.assigned_dotted.add(d)
        elif t is ast.Tuple or t is ast.List:
            for el in target.elts:  # type: ignore[attr-defined]
                self._dotted_targets(el)
        elif t is ast.Starred:
            self._dotted_targets(target.value)  # type: ignore[attr-defined]

    def _open(self, parent: int, kind: str) -> int:
        self._parent.append(parent)
        self._kind.append(kind)
        self._local.append(set())
        self._declared.append({})
        self._bound.append(set())
        self._params.append(set())
        self._imported.append(set())
        return len(self._parent) - 1

    def _resolve(self, name: str, scope: int) -> Key:
        """The variable ``name`` stands for in ``scope``: the nearest scope binding it (class bodies
        are not seen from the functions in them), else the module's."""
        first = True
        while scope > 0:
            if first or self._kind[scope] != "class":
                declared = self._declared[scope].get(name)
                if declared == "global":
                    break
                if declared is None and name in self._local[scope]:
                    return (scope, name)
            first = False
            scope = self._parent[scope]
        return (0, name)

    def key(self, node: ast.Name) -> Key:
        return self.keys.get(id(node)) or (0, node.id)

    def guessed(self, node: ast.Name) -> bool:
        """May the program model guess what ``node`` holds from its name (``test_loader``, ``model``)?
        It does for a parameter (its argument unknown) and a name bound nowhere it looks, never for
        a variable its function or the module assigns: then it holds what was assigned."""
        scope, name = self.key(node)  # type: ignore[misc]
        if self._kind[scope] in ("class", "comprehension"):
            return True  # (the model's reading of these is not mirrored here)
        return (name not in self._bound[scope] and name not in self._imported[scope]) or name in self._params[scope]

    def module_root(self, e: ast.Attribute) -> bool:
        """Is ``e`` an attribute of an imported module (``torch.device``, ``nn.functional.relu``), which
        the program model reads as a qualified name, never from what the file assigns to attributes
        of that name elsewhere (``self.device = ...``)?"""
        v = e.value
        while type(v) is ast.Attribute:
            v = v.value  # type: ignore[attr-defined]
        if type(v) is not ast.Name:
            return False
        scope, name = self.key(v)  # type: ignore[arg-type,misc]
        if name not in self._imported[scope] or name in self._bound[scope] or name in self._params[scope]:
            return False
        return not self.assigned_dotted or dotted_text(e) not in self.assigned_dotted

    def leaves(self, target: ast.expr) -> list[Key]:
        """The variables and attributes a binding to ``target`` (or a value held there) reaches."""
        t = type(target)
        if t is ast.Name:
            k = self.key(target)  # type: ignore[arg-type]
            if self._kind[k[0]] == "class":  # type: ignore[index]
                return [k, target.id]  # type: ignore[attr-defined,list-item]  # a class attribute too
            return [k]
        if t is ast.Attribute:
            return [target.attr]  # type: ignore[attr-defined]
        if t is ast.Subscript or t is ast.Starred:
            return self.leaves(target.value)  # type: ignore[attr-defined]
        if t is ast.Tuple or t is ast.List:
            return [x for el in target.elts for x in self.leaves(el)]  # type: ignore[attr-defined]
        return []


def _names(target: ast.expr, attributes: bool = False) -> list[str]:
    """The names an assignment to ``target`` binds (not items), and with ``attributes`` the names
    of the attributes it sets too."""
    t = type(target)
    if t is ast.Name:
        return [target.id]  # type: ignore[attr-defined]
    if t is ast.Attribute:
        return [target.attr] if attributes else []  # type: ignore[attr-defined]
    if t is ast.Starred or (attributes and t is ast.Subscript):
        return _names(target.value, attributes)  # type: ignore[attr-defined]
    if t is ast.Tuple or t is ast.List:
        return [x for el in target.elts for x in _names(el, attributes)]  # type: ignore[attr-defined]
    return []


_last: tuple[ast.Module, _Facts] | None = None


# The tree's CallableFlow, built on first need (_Flow.callables). Kept here, not in its _Facts,
# which it refers to: a cycle would leave the tree to the cyclic collector.
_callables: tuple[_Facts, CallableFlow] | None = None


@per_lint
def _forget() -> None:
    global _last, _callables
    _last = _callables = None


def facts_of(tree: ast.Module) -> _Facts:
    global _last
    if _last is None or _last[0] is not tree:
        _last = (tree, _Facts(tree))
    return _last[1]


# A token of the solving: some function's return value (any) has come to hold.
_ANY_RETURN = object()


class _Flow:
    # Is _named the model's guess from a name (then a variable it sees assigned is not guessed)?
    guesses = False

    """The identifiers that may hold a kind of value, solved once for a tree (see the module
    docstring); subclasses say what makes one: :meth:`_named`, :meth:`_library`, :meth:`_method`."""

    def __init__(self, tree: ast.Module, table: ImportTable) -> None:
        self.table = table
        self._tree = tree
        facts = facts_of(tree)
        self.facts = facts
        self.params = facts.params
        self.classes = facts.classes
        self.variables = facts.variables
        self.lambda_params = facts.lambda_params
        self.loops = facts.loops
        self.used_as_values = facts.used_as_values
        self._bindings = facts.bindings
        self._defaults = facts.defaults
        self._returns = facts.returns
        self._calls = facts.calls
        self.holders: set[Key] = set()  # variables and attribute names bound to such a value
        self._trace: list[object] | None = None  # what the verdict being solved has read
        self._woken: list[object] | None = None  # what has come to hold since the last item
        self.returning: set[str] = set()  # functions of the file that may return one
        self.lambda_returns = False
        self._quals: dict[str, set[str]] = {}
        self._sources(tree)
        self._solve()

    def _sources(self, tree: ast.Module) -> None:
        """Bind what is one whatever values flow (the identifiers a statement makes one)."""

    def _named(self, identifier: str) -> bool:
        """Is any value of this name one (the model's guess from a name it cannot follow)?"""
        raise NotImplementedError

    def _construct(self, cls: str) -> bool:
        """May building the file's class ``cls`` give one?"""
        return False

    def _library(self, name: str, quals: set[str], call: ast.Call) -> bool:
        """May a call of a callable the file does not define (``name``, the callee's last
        identifier; ``quals``: what its dotted name may resolve to) give one?"""
        raise NotImplementedError

    def _method(self, name: str, receiver: ast.expr) -> bool:
        """May ``receiver.name(...)`` give one, whatever the file defines?"""
        raise NotImplementedError

    def holds(self, e: ast.expr) -> bool:
        """May the model evaluate ``e`` to such a value (or to a container of them)?"""
        t = type(e)
        if t is ast.Name:
            if self._named(e.id) and (not self.guesses or self.facts.guessed(e)):  # type: ignore[attr-defined,arg-type]
                return True
            key = self.facts.key(e)  # type: ignore[arg-type]
            if self._trace is not None:
                self._trace.append(key)
            return key in self.holders
        if t is ast.Attribute:
            if self._named(e.attr):  # type: ignore[attr-defined]
                return True
            if self.facts.module_root(e):  # type: ignore[arg-type]
                return False
            if self._trace is not None:
                self._trace.append(e.attr)  # type: ignore[attr-defined]
            return e.attr in self.holders or self._of_value(e)  # type: ignore[attr-defined]
        if t is ast.Call:
            return self._call(e)  # type: ignore[arg-type]
        if t is ast.BinOp or t is ast.UnaryOp:
            return self._operation(e)
        if t is ast.Subscript:
            return self._subscript(e)  # type: ignore[arg-type]
        if t is ast.IfExp:
            return self.holds(e.body) or self.holds(e.orelse)  # type: ignore[attr-defined]
        if t is ast.BoolOp:
            return any(self.holds(v) for v in e.values)  # type: ignore[attr-defined]
        if t in (ast.NamedExpr, ast.Starred, ast.Await):
            return self.holds(e.value)  # type: ignore[attr-defined]
        if t in (ast.Tuple, ast.List, ast.Set):
            return any(self.holds(v) for v in e.elts)  # type: ignore[attr-defined]
        if t is ast.Dict:
            return any(self.holds(v) for v in e.values)  # type: ignore[attr-defined]
        return False  # constants, arithmetic, comparisons, comprehensions, lambdas, f-strings

    def _of_value(self, e: ast.Attribute) -> bool:
        """May an attribute be one because its value is one (a tensor's ``x.T``)?"""
        return False

    def _operation(self, e: ast.BinOp | ast.UnaryOp) -> bool:
        """May arithmetic give one?"""
        return False

    def _calls_value(self, func: ast.expr) -> bool:
        """May calling what ``func`` evaluates to give one, whatever it is named?"""
        return False

    def _passes_first(self, name: str, quals: set[str], call: ast.Call) -> bool:
        """A call that hands back its first argument (iter(), torch.compile) of one."""
        return bool(call.args) and (name in _FIRST_ARGUMENT or any(q in _FIRST_ARGUMENT_QUALIFIED for q in quals)) and self.holds(call.args[0])

    def _unbound_class(self, name: str, quals: set[str]) -> bool:
        """A capitalised callable the file neither imports nor binds: a document's unimported
        ``nn.Linear`` (conventional names need no import there) may be a torch class."""
        return not quals and name[:1].isupper() and name not in self.variables

    @property
    def callables(self) -> CallableFlow:
        """The identifiers that may hold a function or class of the file (one flow per tree)."""
        global _callables
        if _callables is None or _callables[0] is not self.facts:
            _callables = (self.facts, CallableFlow(self._tree, self.table))
        return _callables[1]

    def _may_hold_callable(self, func: ast.expr, name: str) -> bool:
        """May ``func`` (a variable or attribute named ``name``) hold a function or class of the file?"""
        return name in self.variables and self.callables.holds(func)

    def _own_receiver(self, receiver: ast.expr) -> bool:
        """May ``receiver`` be an instance or a class of the file (so that ``receiver.name(...)``
        calls the file's method ``name``; ``chunks[0].numel()`` does not call the file's ``numel``)?"""
        return self.callables.holds(receiver)

    def _passes_to_methods(self, receiver: ast.expr) -> bool:
        """May ``receiver.name(...)`` pass its arguments to the file's methods named ``name``?"""
        return self.callables.holds(receiver)

    def _returns_one(self, name: str) -> bool:
        """May the file's function ``name`` return one?"""
        if self._trace is not None:
            self._trace.append(("r", name))
        return name in self.returning

    def _any_function_returns(self) -> bool:
        """May calling a function or class held in a variable give one? Only what is used as a
        value (``fn = helper``, ``partial(step, ...)``, ``self.hook``) can be held."""
        if self._trace is not None:
            self._trace.append(_ANY_RETURN)
        facts = self.facts
        return (
            bool(self.returning & facts.used_as_values)
            or self.lambda_returns
            or any(self._construct(c) for c in facts.classes_as_values)
        )

    def _call(self, call: ast.Call) -> bool:
        func = call.func
        if self._calls_value(func):
            return True
        t = type(func)
        if t is ast.Name:
            name = func.id  # type: ignore[attr-defined]
            if name in self.params:
                return self._returns_one(name)
            if name in self.classes:
                return self._construct(name)  # an instance of the file's class
            if self._may_hold_callable(func, name):
                return self._any_function_returns()  # a function held in a variable
        elif t is ast.Attribute:
            name = func.attr  # type: ignore[attr-defined]
            if self._method(name, func.value):  # type: ignore[attr-defined]
                return True
            if name in self.params and self._returns_one(name) and self._own_receiver(func.value):  # type: ignore[attr-defined]
                return True  # a method of the file's classes
            if self._may_hold_callable(func, name) and self._any_function_returns():
                return True  # a function held in an attribute
        else:
            return self._any_function_returns() or any(self.holds(a) for a in call.args)
        d = dotted_text(func)
        if d is None:
            return self._library(name, set(), call)
        quals = self._quals.get(d)
        if quals is None:
            quals = self._quals[d] = self.table.resolve(d)
        return self._library(name, quals, call)

    def _subscript(self, e: ast.Subscript) -> bool:
        return self.holds(e.value)  # a container's item

    # -- solving -------------------------------------------------------------------------

    def _bind(self, target: ast.expr) -> None:
        self._pass_to(self.facts.leaves(target))

    def _pass_to(self, names: list[Key]) -> None:
        for p in names:
            if p not in self.holders:
                self.holders.add(p)
                if self._woken is not None:
                    self._woken.append(p)

    def _solve(self) -> None:
        # A worklist: an item (a binding, a default, a return, a call's arguments) found not to hold
        # waits on what its verdict read (the variables, attributes and returns of _trace), and is
        # asked again only when one of those comes to hold. What holds stays so.
        items: list[tuple] = [
            *((0, target, value) for target, value in self._bindings),
            *((1, names, default) for names, default in self._defaults),
            *((2, owner, value) for owner, value in self._returns),
            *((3, call, None) for call in self._calls),
        ]
        waiting: dict[object, list[int]] = {}
        woken = self._woken = []
        queue = list(range(len(items) - 1, -1, -1))
        holds = self.holds
        while queue:
            i = queue.pop()
            kind, what, value = items[i]
            trace = self._trace = []
            if kind == 3:
                held = any(holds(a) for a in what.args) or any(holds(k.value) for k in what.keywords)
            else:
                held = holds(value)
            self._trace = None
            if not held:
                for token in trace:
                    waiting.setdefault(token, []).append(i)
                continue
            if kind == 0:
                self._bind(what)
            elif kind == 1:
                self._pass_to(what)
            elif kind == 3:
                self._pass_arguments(what)
            elif what is None:
                if not self.lambda_returns:
                    self.lambda_returns = True
                    woken.append(_ANY_RETURN)
            elif what not in self.returning:
                self.returning.add(what)
                woken.append(("r", what))
                woken.append(_ANY_RETURN)
            for token in woken:
                queue.extend(waiting.pop(token, ()))
            woken.clear()
        self._woken = None

    def _pass_arguments(self, call: ast.Call) -> None:
        func = call.func
        name = func.id if type(func) is ast.Name else func.attr if type(func) is ast.Attribute else None  # type: ignore[attr-defined]
        method = type(func) is not ast.Attribute or self._passes_to_methods(func.value)  # type: ignore[attr-defined]
        targets = [name, *_CALLED_THROUGH] if name is not None and method else list(_CALLED_THROUGH)
        if name in self.classes:
            targets.extend(_CONSTRUCTORS)
        if name is None or name == "partial" or self._may_hold_callable(func, name):
            # Through a variable (a function or a class held in it) or functools.partial.
            targets.extend(self.used_as_values)
            targets.extend(_CONSTRUCTORS)
            self._pass_to(self.lambda_params)
        for target in targets:
            self._pass_to(self.params.get(target, []))


class CallableFlow(_Flow):
    """Functions and classes of the file as values (the model's FunctionV and ClassV): a def's or
    class's name read as a value, a method read as an attribute (``self.hook``), ``partial`` of
    one, and where they flow. A call through a variable reaches the file's functions only if the
    variable may hold one; other calls (``log.info(x)``, ``param.numel()``) reach none."""

    def _named(self, identifier: str) -> bool:
        return identifier in self.params or identifier in self.classes

    def _construct(self, cls: str) -> bool:
        return True  # an instance: a module's forward, or __call__

    def holds(self, e: ast.expr) -> bool:
        return type(e) is ast.Lambda or super().holds(e)

    def _sources(self, tree: ast.Module) -> None:
        self.holders.update(self.facts.receivers)  # ``self``: an instance of the method's class

    def _may_hold_callable(self, func: ast.expr, name: str) -> bool:
        # While this flow is being solved it cannot yet tell; any variable may hold one.
        return name in self.variables

    def _own_receiver(self, receiver: ast.expr) -> bool:
        return self.holds(receiver)  # (asked again on each pass of the solving: it only grows)

    def _passes_to_methods(self, receiver: ast.expr) -> bool:
        return True  # (a call's arguments are passed once: it cannot wait for the solving)

    def _library(self, name: str, quals: set[str], call: ast.Call) -> bool:
        if name == "partial" or "functools.partial" in quals:
            return bool(call.args) and self.holds(call.args[0])
        return self._passes_first(name, quals, call)

    def _method(self, name: str, receiver: ast.expr) -> bool:
        return False


# Calls the model takes to give an iterator (its IteratorV): builtins.iter and the iterators of
# builtins and itertools (_BUILTIN_ITERATORS, _ITERTOOLS).
_ITERATOR_CALLS = frozenset({"iter", "map", "zip", "filter", "enumerate", "reversed"})


class IteratorFlow(_Flow):
    """Iterators (TL201: ``.next()`` on one): ``iter(x)``, ``x.__iter__()``, ``map``/``zip``/
    ``enumerate``/``filter``/``reversed``, ``itertools``' iterators and generator expressions, and
    where they flow."""

    def holds(self, e: ast.expr) -> bool:
        return type(e) is ast.GeneratorExp or super().holds(e)

    def _named(self, identifier: str) -> bool:
        return False  # the model guesses no iterator from a name

    def _library(self, name: str, quals: set[str], call: ast.Call) -> bool:
        return name in _ITERATOR_CALLS or any(q.startswith("itertools.") for q in quals) or self._passes_first(name, quals, call)

    def _method(self, name: str, receiver: ast.expr) -> bool:
        return name == "__iter__"


class LoaderFlow(_Flow):
    """Loaders: DataLoader(...) by any name, and whatever an identifier saying "loader" names."""

    guesses = True

    def _named(self, identifier: str) -> bool:
        return _says_loader(identifier)

    def _library(self, name: str, quals: set[str], call: ast.Call) -> bool:
        # DataLoader (by whatever name it is imported as, conventional names included: a document's
        # pre-checks read its conventional imports), and the calls that hand back their first
        # argument (iter(), torch.compile). A call of what the file does not import gives the model
        # no loader, whatever it is named (``loader(i)``, ``self.make_loader()``).
        if any(_says_loader(q.rpartition(".")[2]) for q in quals):
            return True
        return self._passes_first(name, quals, call)

    def _method(self, name: str, receiver: ast.expr) -> bool:
        return name == "__iter__" and self.holds(receiver)

    def _subscript(self, e: ast.Subscript) -> bool:
        # (The model takes ``x.loaders_cfg.train[0]`` for a loader by its dotted text.)
        d = dotted_text(e.value)
        return (d is not None and _says_loader(d)) or self.holds(e.value)

    def loops_over_loader(self) -> bool:
        """Does some ``for`` loop's iterable (or what enumerate/iter/tqdm wrap in it) may be a loader?"""
        for it in self.loops:
            while True:
                if self.holds(it):
                    return True
                if type(it) is not ast.Call:
                    break
                if not it.args:  # type: ignore[attr-defined]
                    if self._wrapper(it.func) and any(self.holds(k.value) for k in it.keywords):  # type: ignore[attr-defined]
                        return True
                    break
                if not self._wrapper(it.func):  # type: ignore[attr-defined]
                    break
                # (libcst's first argument may be a keyword one: ``tqdm(iterable=loader)``.)
                rest = [*it.args[1:], *(k.value for k in it.keywords)]  # type: ignore[attr-defined]
                if any(self.holds(a) for a in rest):
                    return True
                it = it.args[0]  # type: ignore[attr-defined]
        return False

    def _wrapper(self, func: ast.expr) -> bool:
        """enumerate(), iter() or tqdm (by any name it is imported as)."""
        name = func.id if type(func) is ast.Name else func.attr if type(func) is ast.Attribute else ""  # type: ignore[attr-defined]
        if name in _WRAPPERS or name.startswith(("tqdm", "trange")):
            return True
        d = dotted_text(func)
        return d is not None and any(q.split(".", 1)[0] == "tqdm" for q in self.table.resolve(d))

# Module methods that hand back the module itself (the model's _MODULE_SELF_METHODS, and moves).
_SELF_METHODS = frozenset(
    {"train", "eval", "float", "half", "double", "bfloat16", "requires_grad_", "share_memory", "type", "to", "cuda", "cpu"}
)


class ModeFlow(_Flow):
    """Modules whose mode the model knows (see the module docstring)."""

    def _sources(self, tree: ast.Module) -> None:
        switches = False
        for call in self._calls:
            func = call.func
            if type(func) is ast.Attribute and func.attr in ("train", "eval"):
                switches = True
                self.holders.update(self.facts.leaves(func.value))
        if not switches:
            return
        # A function of the file may switch the mode of a module it is given (the model's
        # _mode_effects): what is passed to the file's functions (or through a variable) may
        # come back with a known mode.
        for call in self._calls:
            func = call.func
            name = func.id if type(func) is ast.Name else func.attr if type(func) is ast.Attribute else None
            if name is None or name in self.params or self._may_hold_callable(func, name):
                for arg in (*call.args, *(k.value for k in call.keywords)):
                    self.holders.update(self.facts.leaves(arg.value if type(arg) is ast.Starred else arg))

    def _named(self, identifier: str) -> bool:
        return False  # the model's guess from a name is a module of unknown mode

    def _construct(self, cls: str) -> bool:
        return True  # a module class of the file, perhaps: a new module trains

    def _library(self, name: str, quals: set[str], call: ast.Call) -> bool:
        # A torch.nn class built (``nn.Linear(...)``; a document's ``nn`` needs no import: any
        # capitalised callable the file does not bind may be one), or a wrapper of a module.
        if any(_torch_module_class(q) for q in quals):
            return True
        if self._unbound_class(name, quals):
            return True
        return self._passes_first(name, quals, call)

    def _method(self, name: str, receiver: ast.expr) -> bool:
        return name in _SELF_METHODS and (name in ("train", "eval") or self.holds(receiver))

    def called_in(self, func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        """Is some call of ``func``'s own body (nested defs aside) a call of such a module?"""
        todo: list[ast.AST] = list(func.body)
        while todo:
            node = todo.pop()
            t = type(node)
            if t in (ast.FunctionDef, ast.AsyncFunctionDef):
                continue
            if t is ast.Call and type(node.func) in (ast.Name, ast.Attribute) and self.holds(node.func):  # type: ignore[attr-defined]
                return True
            todo.extend(ast.iter_child_nodes(node))
        return False


def _torch_module_class(qual: str) -> bool:
    head, _, last = qual.rpartition(".")
    return (head == "torch.nn" or head.startswith("torch.nn.")) and last[:1].isupper()


# -- tensors that carry a graph (TL102) --------------------------------------------------


class ModuleFlow(_Flow):
    """Callables that make a graph when called: modules and loss functions (the model's ModuleV
    and LossFnV), whatever their mode. Unlike ModeFlow, a name says it: ``model``, ``criterion``."""

    guesses = True

    def _sources(self, tree: ast.Module) -> None:
        # ``self`` in a method of a class with a base: a module, when the class is one.
        self.holders.update(self.facts.selves)
        self._names: dict[str, bool] = {}

    def _named(self, identifier: str) -> bool:
        said = self._names.get(identifier)
        if said is None:
            from torchlint.analysis.model import _MODEL_NAME
            from torchlint.analysis.training import looks_like_loss_name

            said = self._names[identifier] = looks_like_loss_name(identifier) or (
                identifier[:1].islower() and _MODEL_NAME.search(identifier.lower()) is not None
            )
        return said

    def _construct(self, cls: str) -> bool:
        return True

    def _library(self, name: str, quals: set[str], call: ast.Call) -> bool:
        if any(q.startswith("torch.nn.") and q.rpartition(".")[2][:1].isupper() for q in quals):
            return True  # a torch.nn module or loss class, DataParallel
        if self._unbound_class(name, quals):
            return True  # a document's unimported nn.Linear
        return self._passes_first(name, quals, call)

    def _method(self, name: str, receiver: ast.expr) -> bool:
        # ``x.to(device)``/``x.cuda()`` on what the model does not know is taken to be a module.
        return name in ("to", "cuda") or (name in _SELF_METHODS and self.holds(receiver))


_FIRST_GRAPH = frozenset({"stack", "cat", "zeros_like", "ones_like", "randn_like", "rand_like", "Variable", "compile", "script"})
_BUILTINS = frozenset(dir(builtins))
# Attributes of a tensor that are not tensors carrying its graph.
_NOT_TENSORS = frozenset({"shape", "device", "dtype", "ndim", "is_cuda", "grad_fn"})
# Tensor methods whose result carries the receiver's graph (the model's _tensor_method).
_KEEPS_GRAPH: frozenset[str] | None = None


def _keeps_graph() -> frozenset[str]:
    global _KEEPS_GRAPH
    if _KEEPS_GRAPH is None:
        from torchlint.analysis.model import _ACTIVATION_METHODS, _SHAPE_METHODS
        from torchlint.analysis.training import DERIVING_METHODS

        _KEEPS_GRAPH = (frozenset({"to", "cuda", "cpu"}) | DERIVING_METHODS | _ACTIVATION_METHODS | _SHAPE_METHODS) - {"detach", "detach_"}
    return _KEEPS_GRAPH


class GradFlow(_Flow):
    """Tensors that may carry an autograd graph: what calling a module or a loss function gives
    (a ``torch.nn.functional`` loss too, ``module.forward(...)``), and what is computed from it."""

    def __init__(self, tree: ast.Module, table: ImportTable) -> None:
        self.modules = ModuleFlow(tree, table)
        super().__init__(tree, table)

    def _named(self, identifier: str) -> bool:
        return False  # a name the model cannot follow is never a tensor to it

    def _calls_value(self, func: ast.expr) -> bool:
        return self.modules.holds(func)

    def _of_value(self, e: ast.Attribute) -> bool:
        return e.attr not in _NOT_TENSORS and self.holds(e.value)

    def _operation(self, e: ast.BinOp | ast.UnaryOp) -> bool:
        if type(e) is ast.UnaryOp:
            return self.holds(e.operand)  # type: ignore[union-attr]
        return self.holds(e.left) or self.holds(e.right)  # type: ignore[union-attr]

    def _library(self, name: str, quals: set[str], call: ast.Call) -> bool:
        from torchlint.analysis.training import LOSS_FUNCTIONS, is_loss_function_qualname

        if any(is_loss_function_qualname(q) for q in quals) or (not quals and name in LOSS_FUNCTIONS):
            return True  # F.cross_entropy(...), imported or a document's unimported F
        if not call.args:
            return False
        if quals:
            # torch.stack/cat/*_like, Variable, torch.compile: their first argument's graph (other
            # library calls give what the model does not know).
            return any(q.startswith("torch.") and q.rpartition(".")[2] in _FIRST_GRAPH for q in quals) and self.holds(call.args[0])
        if name in _BUILTINS and name not in self.variables:
            return False  # len(), float(), sum(): nothing the model knows as a tensor
        return self.holds(call.args[0])  # a name the file does not bind (a document's torch.stack)

    def _method(self, name: str, receiver: ast.expr) -> bool:
        if name == "forward":
            return True
        return name in _keeps_graph() and self.holds(receiver)
