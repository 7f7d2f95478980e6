"""Which values of a file may be loaders, or modules of known mode? Pre-checks of TL104 and TL105.

**Loaders** (:class:`LoaderFlow`): could a ``for`` loop of the file run over a DataLoader's batches?

Both rules act only on what the program model calls a loop over batches: a ``for`` whose
iterable it evaluates to a loader (``LoaderV``, or ``iter()`` of one), directly or inside
``enumerate``/``iter``/``tqdm``. The model knows a value as a loader only if it is built by
``DataLoader(...)``, named so (an identifier saying "loader"), or reached from one of those
through bindings, containers, subscripts, calls of the file's functions (arguments and
returns) and attributes. This pass follows the same ways on CPython's tree, by identifier
and without regard to order or scope, so it says "no" only where the model cannot say
"yes": a file full of import loaders and ``make_loader`` closures (torch's own inductor)
but no loop over a data loader is not parsed by libcst for these rules.

What it over-approximates, on purpose: any identifier with "loader" in it is a loader;
a name or attribute bound anywhere to a loader-like value is one everywhere; a call
through a variable may return what any function of the file returns; the arguments of
such calls (and of ``functools.partial``) may reach any function used as a value.

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


class _Facts:
    """What the flows read of a tree, gathered in one traversal (shared by the flows of one lint)."""

    def __init__(self, tree: ast.Module) -> None:
        self.params: dict[str, list[str]] = {}  # def name -> its parameters
        self.classes: set[str] = set()
        self.variables: set[str] = set()  # names and attributes bound by assignment, and parameters
        self.lambda_params: list[str] = []
        self.loops: list[ast.expr] = []  # the iterables of for loops
        self.bindings: list[tuple[ast.expr, ast.expr]] = []  # (target, value)
        self.defaults: list[tuple[list[str], ast.expr]] = []
        self.returns: list[tuple[str | None, ast.expr]] = []  # (def name, or None for a lambda; value)
        self.calls: list[ast.Call] = []
        self.selves: list[str] = []  # first parameters of the methods of classes with a base
        values: set[str] = set()  # identifiers read other than as a call's callee
        callees: set[int] = set()
        # (node, name of the def whose own body holds it: None at module level, "" in a lambda)
        todo: list[tuple[ast.AST, str | None]] = [(tree, None)]
        pop, push = todo.pop, todo.append
        while todo:
            node, owner = pop()
            t = type(node)
            inner = owner
            if t is ast.Name:
                if id(node) not in callees:
                    values.add(node.id)  # type: ignore[attr-defined]
                continue
            if t is ast.Attribute:
                if id(node) not in callees:
                    values.add(node.attr)  # type: ignore[attr-defined]
            elif t is ast.Assign:
                for target in node.targets:  # type: ignore[attr-defined]
                    self.bindings.append((target, node.value))  # type: ignore[attr-defined]
            elif t is ast.AnnAssign or t is ast.AugAssign or t is ast.NamedExpr:
                if node.value is not None:  # type: ignore[attr-defined]
                    self.bindings.append((node.target, node.value))  # type: ignore[attr-defined]
            elif t is ast.For or t is ast.AsyncFor:
                self.loops.append(node.iter)  # type: ignore[attr-defined]
                self.bindings.append((node.target, node.iter))  # type: ignore[attr-defined]
            elif t is ast.comprehension:
                self.bindings.append((node.target, node.iter))  # type: ignore[attr-defined]
            elif t is ast.Call:
                self.calls.append(node)  # type: ignore[arg-type]
                callees.add(id(node.func))  # type: ignore[attr-defined]
            elif t is ast.Return or t is ast.Yield or t is ast.YieldFrom:
                if node.value is not None and owner is not None:  # type: ignore[attr-defined]
                    self.returns.append((owner or None, node.value))  # type: ignore[attr-defined]
            elif t is ast.FunctionDef or t is ast.AsyncFunctionDef:
                names = self._parameters(node.args)  # type: ignore[attr-defined]
                self.params.setdefault(node.name, []).extend(names)  # type: ignore[attr-defined]
                inner = node.name  # type: ignore[attr-defined]
            elif t is ast.Lambda:
                self.lambda_params.extend(self._parameters(node.args))  # type: ignore[attr-defined]
                self.returns.append((None, node.body))  # type: ignore[attr-defined]
                inner = ""
            elif t is ast.ClassDef:
                self.classes.add(node.name)  # type: ignore[attr-defined]
                inner = None
                if node.bases or node.keywords:  # type: ignore[attr-defined]
                    for item in node.body:  # type: ignore[attr-defined]
                        if type(item) is ast.FunctionDef or type(item) is ast.AsyncFunctionDef:
                            self.selves.extend(a.arg for a in (*item.args.posonlyargs, *item.args.args)[:1])
            elif t is ast.Match:
                for sub in ast.walk(node):
                    name = getattr(sub, "name", None) if type(sub) in (ast.MatchAs, ast.MatchStar) else getattr(sub, "rest", None)
                    if isinstance(name, str):
                        self.bindings.append((ast.Name(name), node.subject))  # type: ignore[attr-defined]
            for field in node._fields:
                value = getattr(node, field, None)
                if type(value) is list:
                    for item in value:
                        if isinstance(item, ast.AST):
                            push((item, inner))
                elif isinstance(value, ast.AST) and field != "ctx":
                    push((value, inner))
        for target, _ in self.bindings:
            self.variables.update(_leaves(target))
        # A parameter may hold whatever a caller passes, a function too.
        self.variables.update(p for names in self.params.values() for p in names)
        self.variables.update(self.lambda_params)
        # Functions used as values (callbacks, ``partial``, returned closures): a call through a
        # variable may reach them.
        self.used_as_values = values & self.params.keys()

    def _parameters(self, args: ast.arguments) -> list[str]:
        names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg) if a is not None]
        for default in (*args.defaults, *(d for d in args.kw_defaults if d is not None)):
            self.defaults.append((names, default))
        return names


def _leaves(target: ast.expr) -> list[str]:
    t = type(target)
    if t is ast.Name:
        return [target.id]  # type: ignore[attr-defined]
    if t is ast.Attribute:
        return [target.attr]  # type: ignore[attr-defined]
    if t is ast.Subscript or t is ast.Starred:
        return _leaves(target.value)  # type: ignore[attr-defined]
    if t is ast.Tuple or t is ast.List:
        return [x for el in target.elts for x in _leaves(el)]  # type: ignore[attr-defined]
    return []


_last: tuple[ast.Module, _Facts] | None = None


@per_lint
def _forget() -> None:
    global _last
    _last = None


def facts_of(tree: ast.Module) -> _Facts:
    global _last
    if _last is None or _last[0] is not tree:
        _last = (tree, _Facts(tree))
    return _last[1]


class _Flow:
    """The identifiers that may hold a kind of value, solved once for a tree (see the module
    docstring); subclasses say what makes one: :meth:`_named`, :meth:`_library`, :meth:`_method`."""

    def __init__(self, tree: ast.Module, table: ImportTable) -> None:
        self.table = table
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
        self.holders: set[str] = set()  # identifiers (names, attribute names, parameters) bound to such a value
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
            return self._named(e.id) or e.id in self.holders  # type: ignore[attr-defined]
        if t is ast.Attribute:
            return self._named(e.attr) or e.attr in self.holders or self._of_value(e)  # type: ignore[attr-defined]
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

    def _any_function_returns(self) -> bool:
        return bool(self.returning) or self.lambda_returns

    def _call(self, call: ast.Call) -> bool:
        func = call.func
        if self._calls_value(func):
            return True
        t = type(func)
        if t is ast.Name:
            name = func.id  # type: ignore[attr-defined]
            if name in self.params:
                return name in self.returning
            if name in self.classes:
                return self._construct(name)  # an instance of the file's class
            if name in self.variables:
                return self._any_function_returns()  # a function held in a variable
        elif t is ast.Attribute:
            name = func.attr  # type: ignore[attr-defined]
            if self._method(name, func.value):  # type: ignore[attr-defined]
                return True
            if name in self.params and name in self.returning:
                return True  # a method of the file's classes
            if name in self.variables and self._any_function_returns():
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
        for leaf in _leaves(target):
            if leaf not in self.holders:
                self.holders.add(leaf)
                self._changed = True

    def _pass_to(self, names: list[str]) -> None:
        for p in names:
            if p not in self.holders:
                self.holders.add(p)
                self._changed = True

    def _solve(self) -> None:
        # Each pass takes up only what no earlier pass found holding: what holds stays so.
        bindings, defaults, calls = self._bindings, self._defaults, self._calls
        returns = [(owner, value) for owner, value in self._returns]
        self._changed = True
        while self._changed:
            self._changed = False
            rest = []
            for target, value in bindings:
                if self.holds(value):
                    self._bind(target)
                else:
                    rest.append((target, value))
            bindings = rest
            rest_defaults = []
            for names, default in defaults:
                if self.holds(default):
                    self._pass_to(names)
                else:
                    rest_defaults.append((names, default))
            defaults = rest_defaults
            rest_returns = []
            for owner, value in returns:
                if not self.holds(value):
                    rest_returns.append((owner, value))
                elif owner is None:
                    self.lambda_returns = self._changed = True
                elif owner not in self.returning:
                    self.returning.add(owner)
                    self._changed = True
            returns = rest_returns
            rest_calls = []
            for call in calls:
                if any(self.holds(a) for a in call.args) or any(self.holds(k.value) for k in call.keywords):
                    self._pass_arguments(call)
                else:
                    rest_calls.append(call)
            calls = rest_calls

    def _pass_arguments(self, call: ast.Call) -> None:
        func = call.func
        name = func.id if type(func) is ast.Name else func.attr if type(func) is ast.Attribute else None  # type: ignore[attr-defined]
        targets = [name, *_CALLED_THROUGH] if name is not None else list(_CALLED_THROUGH)
        if name in self.classes:
            targets.extend(_CONSTRUCTORS)
        if name is None or name in self.variables or name == "partial":
            # Through a variable (a function or a class held in it) or functools.partial.
            targets.extend(self.used_as_values)
            targets.extend(_CONSTRUCTORS)
            self._pass_to(self.lambda_params)
        for target in targets:
            self._pass_to(self.params.get(target, []))


class LoaderFlow(_Flow):
    """Loaders: DataLoader(...) by any name, and whatever an identifier saying "loader" names."""

    def _named(self, identifier: str) -> bool:
        return _says_loader(identifier)

    def _library(self, name: str, quals: set[str], call: ast.Call) -> bool:
        # DataLoader (by whatever name it is imported as, conventional names included), and the
        # calls that hand back their first argument (iter(), torch.compile).
        if _says_loader(name) or any(_says_loader(q.rpartition(".")[2]) for q in quals):
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
                self.holders.update(_leaves(func.value))
        if not switches:
            return
        # A function of the file may switch the mode of a module it is given (the model's
        # _mode_effects): what is passed to the file's functions (or through a variable) may
        # come back with a known mode.
        for call in self._calls:
            func = call.func
            name = func.id if type(func) is ast.Name else func.attr if type(func) is ast.Attribute else None
            if name is None or name in self.params or name in self.variables:
                for arg in (*call.args, *(k.value for k in call.keywords)):
                    self.holders.update(_leaves(arg.value if type(arg) is ast.Starred else arg))

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
