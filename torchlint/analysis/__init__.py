"""The program model and the analyses rules share. Nothing here imports torch.

``program_model(context)`` (in :mod:`torchlint.analysis.model`) builds, once per
file and only when a rule asks, an abstract interpretation of the module and of
every function and method in it (see docs/architecture-model.md). Queries:

- ``model.fact(call)`` -> :class:`CallFact` or None: what was known at a call:
  ``func`` (the callee's value), ``receiver`` (for ``x.m(...)``), ``args`` (one
  value per argument, in source order), ``function`` (the enclosing def),
  ``loops`` (enclosing ``for``/``while`` of that def, outermost first),
  ``grad_mode`` ("no_grad", "inference_mode", "enable_grad" or None) and
  ``discarded`` (an expression statement).
- ``model.calls()``: every :class:`CallFact`, in the order they were interpreted.
- ``model.update(node)`` -> :class:`UpdateFact` or None: at ``x += y``, the values of
  ``x`` (``target``) and ``y`` (``value``) with ``function``, ``loops`` and ``grad_mode``.
- ``model.loop(node)`` / ``model.function_region(def)`` -> :class:`Region`: the
  calls that run in a loop or function body and its ``.grad`` clearing statements.
- ``model.may_clear_grads(fact)`` / ``model.function_clears(def)``: the effect
  model (an unseen call can clear gradients only if it can reach a model,
  optimizer, parameters or an object holding one, or is an inherited method).
- ``model.classes`` (the first class of each name: the one the model follows),
  ``model.class_defs(name)`` (every class statement of a name), ``model.functions``,
  ``model.method(cls, name)``, ``model.is_module_class(name)``, ``model.class_attrs(cls)``
  (``self.x`` joins).
- ``model.tables`` (:mod:`torchlint.analysis.tables`, also ``file_tables(context)`` without
  running the interpretation): what each name of the file is. ``tables.classes`` /
  ``tables.functions`` (:class:`ClassInfo`, :class:`FuncInfo`: scope, owner class, methods,
  class-level attributes, enclosing defs, ``in_try``), ``tables.classes_named(name)``,
  ``tables.class_info(node)`` / ``func_info(node)`` / ``scope_of(def)`` (:class:`ScopeInfo`:
  the names a function or the module binds, chained outwards; ``scope.binding(name)``,
  ``scope.qualname(expr)``), and, built on first use by one walk, ``tables.calls``
  (:class:`CallSite`: scope, in a ``try``, in a method of which class, in a comprehension),
  ``calls_named(name)``, ``site(call)``, ``sequential_assigns``, ``foreign_attr_assigns``,
  ``subscript_assigns``.
- ``model.module_output(value)``: for a module whose last step the file shows (``nn.Softmax``
  and friends, an ``nn.Sequential`` ending in one, a class of the file whose ``forward``
  returns the activation on every path), a ``TensorV`` with ``act``; else None (TL103).
- ``model.mode_dependent(value)`` / ``model.class_mode_dependent(name)``: does the module
  behave differently in train and eval mode (dropout, batch norm, ``self.training``: True;
  only layers known not to: False; layers the file does not show: None) (TL105).
- ``model.is_torch_module_class(name)`` (bases resolved through the imports to
  ``torch.nn``, not any ``*Module``) and ``model.is_torch_module(value)`` (a
  ``ModuleV`` of such a class, or of a ``torch.nn`` class: not a name guess).

- ``model.definitions(name_node)`` -> :class:`Defs` or None: provenance, the
  definitions (:class:`Def`) that may give a name read its value;
  ``model.scope_definitions(def_or_None, name)`` every definition in a body;
  ``model.call_sites(def)`` the calls of a function the model followed. The shape
  analysis evaluates these with its own arithmetic.
- ``value.shape`` for a ``TensorV`` of a recorded fact (``CallFact.args``/``receiver``,
  ``UpdateFact.target``/``value``), or ``model.shape(expr, def_or_None)`` -> :class:`Shape`
  (``dims``, None where the file does not fix a size; ``batch``: a DataLoader's batch first;
  ``dtype``) or None: the shape analysis's answer, computed on the first request and remembered
  per expression (a batch of a loader over a known dataset, ``torch.randn(2, 3)``, what a model
  of the file gives for such an input).

Analyses beside the program model (docs/architecture-model.md lists who asks what), each
computed once per file on first request (cached in ``context.cache`` where it is more than a
function of its arguments):

- ``module_bindings(context)`` (:mod:`torchlint.analysis.bindings`, on CPython's tree):
  which names the module binds and where, and every name it reads;
  ``bindings.bound_at(read)`` (bound when that line runs? module-level code runs in
  order, a function body when called) and ``bindings.later_binding(read)`` (TL002).
- :mod:`torchlint.analysis.steps`: ``optimizer_stepped(fact)``, ``is_scheduler_step(fact)``,
  ``is_optimizer(dotted, value)``, ``operand(step, dotted)``, ``cleared_instead(model, loop,
  opt, step)`` (does a loop leave an optimizer's gradients uncleared) (TL101, TL106).
- :mod:`torchlint.analysis.evaluation`: ``evaluates(model, fact, region)``,
  ``trains_module(model, fact, region, name)``, ``switched_to_training(...)``,
  ``region_around(model, fact)`` (TL105); ``evaluation_call(model, region)`` (a loop that
  only evaluates, with gradients on), ``called_with_grad``, ``backward_after`` (TL104).
- :mod:`torchlint.analysis.devices`: ``is_device_checked_loss(fact, model, context)``,
  ``on_accelerator(placement)`` (TL401).
- :mod:`torchlint.analysis.accumulators`: ``never_a_tensor``, ``rebound_in``, ``feeds_graph``,
  ``read_as_number_only``, and ``may_report``/``candidate_values`` on CPython's tree (TL102).
- :mod:`torchlint.analysis.value_flows` (on CPython's tree, for the pre-checks): ``LoaderFlow``
  (a ``for`` loop over a loader: TL104, TL105), ``ModeFlow`` (a module of known mode called:
  TL105), ``GradFlow`` (a tensor carrying a graph: TL102), ``IteratorFlow`` (an iterator: TL201),
  ``CallableFlow`` (a function or class of the file held in a variable: where calls through
  variables and methods may go).
- :mod:`torchlint.analysis.module_init`: what ``__init__`` does before ``Module.__init__``
  (``init_statements``, ``self_stores``, ``hands_self_on``, ``calls_init``, ``is_layer``) (TL108).
- :mod:`torchlint.analysis.api_exemptions`: ``inside_own_package``, ``version_test``,
  ``catches_missing_api``, the ``CompatibilityCode`` mixins, ``import_path_parts``,
  ``names_the_file_defines`` (TL203, TL204, TL501, TL502).
- :mod:`torchlint.analysis.vision_builders`: ``weights_flags(context, call)`` (the
  torchvision builder a call reaches and its legacy weights flags) and the
  ``torch.hub.load`` helpers (TL202, TL502).
- :mod:`torchlint.analysis.apicalls`: ``argument``, ``keyword``, the target release, and the
  edits fixes share: ``add_keyword``, ``replace_argument``, ``reference_to``, ``condition_text``.
- ``tables.stored_on_self(call)`` and ``torchlint.shapes.input_ranks(context, call)`` (TL110).

Values are in :mod:`torchlint.analysis.values`: ``ModuleV`` (cls, placement,
moves_inputs, training, back: the mode a loop's back edge brings, output,
mode_dependent), ``TensorV`` (placement, origin: the loader and binding,
grad, act: the activation applied last and act_site; ``cpu_batch``; ``shape``), ``LoaderV``, ``IteratorV``, ``OptimizerV`` (params),
``SchedulerV``, ``ScalerV``, ``LossFnV``, ``DatasetV``, ``DeviceV``,
``ParamsV``, ``FunctionV``, ``ClassV``, ``InstanceV``, ``TupleV`` and
``UNKNOWN``; ``Placement`` says where a module or tensor was put (``CPU``, or an
accelerator with the device expression and the moving call).
"""
