"""The error codes each operation can answer, read from the code that raises them.

The OpenAPI document lists, per operation and status, the `code` values a client must handle.
They are not written by hand: this module parses the service's source (`shared/`), finds every
place that builds a `DomainError` (`NotFound("...", code="message_not_found")`, `Invalid.field(...)`,
or a helper that returns one), and follows calls from a route's handler through the modules it
imports. It over-approximates on purpose (a code reachable by some call path is listed even if
that path needs unusual state) and never invents a code that no code path can raise.

Calls are resolved like this: `name(...)` to the function of that name in the same module or
the one it was imported from; `module.name(...)` through the module's import; `obj.name(...)`
to every method called `name` defined in `shared/` (the services are reached through objects).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]  # shared/
SKIPPED = ("devtools", "storage/migrations")
ERRORS_MODULE = "shared.domain.errors"

Code = tuple[int, str]  # (HTTP status, machine code)


@dataclass
class _Function:
    module: str
    name: str
    codes: set[Code] = field(default_factory=set)
    calls: set[tuple[str, str]] = field(default_factory=set)  # (kind, target): see _resolve


@dataclass
class _Module:
    name: str
    imports: dict[str, str] = field(default_factory=dict)  # local name -> "module" or "module:attr"
    functions: dict[str, list[_Function]] = field(default_factory=dict)


def _module_name(path: Path) -> str:
    return "shared." + ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _literal(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


class _Index:
    def __init__(self) -> None:
        self.modules: dict[str, _Module] = {}
        self.methods: dict[str, list[_Function]] = {}
        trees: dict[str, ast.Module] = {}
        for path in sorted(ROOT.rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if any(rel.startswith(skip) for skip in SKIPPED):
                continue
            trees[_module_name(path)] = ast.parse(path.read_text(encoding="utf-8"))
        self.errors = self._error_classes(trees)
        for name, tree in trees.items():
            self.modules[name] = self._read_module(name, tree)

    @staticmethod
    def _error_classes(trees: dict[str, ast.Module]) -> dict[str, Code]:
        """Every DomainError subclass in shared/, by class name: its status and default code."""
        found: dict[str, Code] = {"DomainError": (400, "bad_request")}
        changed = True
        while changed:
            changed = False
            for tree in trees.values():
                for node in tree.body:
                    if not isinstance(node, ast.ClassDef) or node.name in found:
                        continue
                    bases = [b.id for b in node.bases if isinstance(b, ast.Name) and b.id in found]
                    if not bases:
                        continue
                    status, code = found[bases[0]]
                    for item in node.body:
                        if isinstance(item, ast.Assign) and isinstance(item.targets[0], ast.Name):
                            value = item.value
                            if (
                                item.targets[0].id == "status"
                                and isinstance(value, ast.Constant)
                                and isinstance(value.value, int)
                            ):
                                status = int(value.value)
                            elif item.targets[0].id == "code" and (text := _literal(value)) is not None:
                                code = text
                    found[node.name] = (status, code)
                    changed = True
        return found

    def _read_module(self, name: str, tree: ast.Module) -> _Module:
        """One pass over the module: its imports (anywhere, late ones too), its functions and
        methods, and what each raises and calls (a nested function counts for its outer one)."""
        module = _Module(name)
        stack: list[_Function] = []

        def visit(node: ast.AST, owner: str | None) -> None:
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    module.imports[alias.asname or alias.name] = f"{node.module}:{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    module.imports[alias.asname or alias.name.split(".")[0]] = alias.name
            elif isinstance(node, ast.Call) and stack:
                self._read_call(node, stack)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not stack:
                function = _Function(name, node.name)
                key = f"{owner}.{node.name}" if owner else node.name
                module.functions.setdefault(key, []).append(function)
                if owner:
                    self.methods.setdefault(node.name, []).append(function)
                stack.append(function)
                for child in ast.iter_child_nodes(node):
                    visit(child, None)
                stack.pop()
                return
            inner = node.name if isinstance(node, ast.ClassDef) and not stack and owner is None else None
            for child in ast.iter_child_nodes(node):
                visit(child, inner)

        visit(tree, None)
        return module

    def _read_call(self, call: ast.Call, stack: list[_Function]) -> None:
        target = call.func
        error_class: str | None = None
        if isinstance(target, ast.Name) and target.id in self.errors:
            error_class = target.id
        elif (
            isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id in self.errors
        ):
            error_class = target.value.id  # Invalid.field(...)
        if error_class is not None:
            status, default = self.errors[error_class]
            given = next((_literal(k.value) for k in call.keywords if k.arg == "code"), None)
            entry: tuple[str, Any] = ("code", (status, given or default))
        elif isinstance(target, ast.Name):
            entry = ("call", ("name", target.id))
        elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
            entry = ("call", ("attr", f"{target.value.id}.{target.attr}"))
        elif isinstance(target, ast.Attribute):
            entry = ("call", ("method", target.attr))
        else:
            return
        for function in stack:
            (function.codes if entry[0] == "code" else function.calls).add(entry[1])

    def _resolve(self, caller: _Function, kind: str, target: str) -> list[_Function]:
        module = self.modules[caller.module]
        if kind == "name":
            if target in module.functions:
                return module.functions[target]
            imported = module.imports.get(target, "")
            source, _, attr = imported.partition(":")
            if source in self.modules and attr in self.modules[source].functions:
                return self.modules[source].functions[attr]
            return []
        if kind == "attr":
            owner, _, attr = target.partition(".")
            found = module.imports.get(owner)
            if found is not None:
                imported = found
                source = imported.replace(":", ".")
                if source in self.modules:
                    return self.modules[source].functions.get(attr, [])
                source, _, cls = imported.partition(":")
                if source in self.modules:  # a class: Class.method(...)
                    return self.modules[source].functions.get(f"{cls}.{attr}", [])
                return []
            return self.methods.get(attr, [])
        return self.methods.get(target, [])

    def codes_of(self, module: str, qualname: str) -> frozenset[Code]:
        if module not in self.modules:  # a function outside shared/ (a test's own route): nothing known
            return frozenset()
        start = self.modules[module].functions.get(qualname, [])
        seen: set[int] = set()
        codes: set[Code] = set()
        stack = list(start)
        while stack:
            function = stack.pop()
            if id(function) in seen:
                continue
            seen.add(id(function))
            codes |= function.codes
            for kind, target in function.calls:
                stack.extend(self._resolve(function, kind, target))
        return frozenset(codes)


@cache
def _index() -> _Index:
    return _Index()


def codes_of(function: Callable[..., object]) -> frozenset[Code]:
    """The (status, code) pairs `function` (in shared/) can raise, directly or through its calls."""
    return _index().codes_of(function.__module__, function.__qualname__)


def by_status(codes: Iterable[Code]) -> dict[int, list[str]]:
    out: dict[int, set[str]] = {}
    for status, code in codes:
        out.setdefault(status, set()).add(code)
    return {status: sorted(found) for status, found in sorted(out.items())}
