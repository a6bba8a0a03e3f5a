"""What a runtime's code must look like: its handler names, and a light look at the code.

Each runtime in the registry (`invoker.runtimes`) carries one `CodeRules`. They are pure
(no I/O): the gateway calls them on a deploy body and turns a `CodeRejected` into a 400
naming the field, so a typo in a handler is refused at deploy time instead of failing
every call.

Python code is parsed (`ast`) and the handler's function must be defined at the top of
its module. JavaScript is not parsed (no JavaScript parser here): a source file must at
least mention the handler's export by name, and a zip must hold the file the handler
resolves to as `require` would; the rest is found out by the runtime's `/init`.
"""

from __future__ import annotations

import ast
import json
import posixpath
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol

ReadMember = Callable[[str], bytes]  # a zip member's bytes by name


class CodeRejected(ValueError):
    """The code or handler of a deploy does not fit its runtime; `field` names the culprit."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class CodeRules(Protocol):
    """One runtime's rules for handlers and code."""

    @property
    def language(self) -> str:
        """As a user reads it: "Python", "JavaScript"."""

    @property
    def handler_pattern(self) -> re.Pattern[str]:
        """What every handler of the runtime matches."""

    @property
    def handler_help(self) -> str:
        """What a handler looks like, e.g. "'module.function'"."""

    def check_source(self, source: str, handler: str) -> None:
        """Raise CodeRejected when a single source file cannot serve `handler`."""

    def check_zip(self, names: Collection[str], read: ReadMember, handler: str) -> None:
        """Raise CodeRejected when a zip (its member names, a reader) cannot serve `handler`."""


# ----------------------------------------------------------------------------- Python


def _defines(tree: ast.Module, name: str) -> bool:
    """Does the module define `name` at top level (def, class, assignment or import)?"""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == name:
                return True
        elif isinstance(node, ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                return True
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            if isinstance(node.target, ast.Name) and node.target.id == name:
                return True
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if any((a.asname or a.name.split(".")[0]) == name for a in node.names):
                return True
    return False


def _python_defines(source: str, handler: str, field: str) -> None:
    module, _, func = handler.rpartition(".")
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise CodeRejected(f"code does not parse: {exc.msg} (line {exc.lineno})", field) from exc
    except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes, absurd nesting
        raise CodeRejected(f"code does not parse: {exc}", field) from None
    if not _defines(tree, func):
        raise CodeRejected(f"handler {handler!r}: module {module!r} defines no {func!r}", "handler")


@dataclass(frozen=True)
class PythonRules:
    """`module.function`; the module is parsed and must define the function."""

    language: str = "Python"
    handler_pattern: re.Pattern[str] = re.compile(
        r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"
    )
    handler_help: str = "'module.function'"

    def check_source(self, source: str, handler: str) -> None:
        """One dot (the file is the module), and the parsed module defines the function."""
        if handler.count(".") != 1:
            raise CodeRejected(
                "with code.source the handler is 'module.function' (one dot)", "handler"
            )
        _python_defines(source, handler, "code.source")

    def check_zip(self, names: Collection[str], read: ReadMember, handler: str) -> None:
        """The module's file (or package) is in the zip and defines the function."""
        module, _, _ = handler.rpartition(".")
        path = module.replace(".", "/")
        for candidate in (f"{path}.py", f"{path}/__init__.py"):
            if candidate in names:
                source = read(candidate).decode("utf-8", errors="replace")
                _python_defines(source, handler, "code.zip")
                return
        raise CodeRejected(
            f"handler {handler!r}: the zip has no {path}.py or {path}/__init__.py", "handler"
        )


# ------------------------------------------------------------------------- JavaScript

_JS_IDENTIFIER = r"[A-Za-z_$][A-Za-z0-9_$]*"
_JS_SEGMENT = r"[A-Za-z0-9_$-]+"
# What `require` tries after a path, in its order (no ESM-only extensions: it would not).
_REQUIRE_SUFFIXES = ("", ".js", ".json", ".node")


def _as_file(names: Collection[str], base: str) -> str | None:
    for suffix in _REQUIRE_SUFFIXES:
        if base and base + suffix in names:
            return base + suffix
    return None


def _as_index(names: Collection[str], base: str) -> str | None:
    index = posixpath.join(base, "index") if base else "index"
    for suffix in _REQUIRE_SUFFIXES[1:]:
        if index + suffix in names:
            return index + suffix
    return None


def _require_target(names: Collection[str], read: ReadMember, base: str) -> str | None:
    """The zip member `require('./' + base)` loads, or None: a file, then a directory
    (its package.json `main`, then its index)."""
    found = _as_file(names, base)
    if found is not None:
        return found
    manifest = posixpath.join(base, "package.json") if base else "package.json"
    if manifest in names:
        main = _package_main(read(manifest))
        if main:
            target = posixpath.normpath(posixpath.join(base, main))
            if target != ".." and not target.startswith("../"):
                target = "" if target == "." else target
                found = _as_file(names, target) or _as_index(names, target)
                if found is not None:
                    return found
    return _as_index(names, base)


def _package_main(data: bytes) -> str | None:
    try:
        manifest = json.loads(data)
    except ValueError:
        raise CodeRejected("code.zip: package.json is not valid JSON", "code.zip") from None
    main = manifest.get("main") if isinstance(manifest, dict) else None
    return main if isinstance(main, str) and main.strip() else None


@dataclass(frozen=True)
class NodeRules:
    """`function` (an export of the entry: the source file, or the zip's package.json
    `main`, else index.js) or `module.function`. JavaScript is not parsed: see the module
    docstring for what is checked."""

    language: str = "JavaScript"
    handler_pattern: re.Pattern[str] = re.compile(
        rf"^(?:{_JS_SEGMENT}(?:[./]{_JS_SEGMENT})*\.)?{_JS_IDENTIFIER}$"
    )
    handler_help: str = "'function' or 'module.function'"

    def check_source(self, source: str, handler: str) -> None:
        """A plain module name (the file is written as <module>.js), and the source
        mentions the export's name as a word: a typo is caught, a parse error is not."""
        module, _, func = handler.rpartition(".")
        if "." in module or "/" in module:
            raise CodeRejected(
                "with code.source the handler is 'function' or 'module.function' (one dot); "
                "use a zip for a module in a directory",
                "handler",
            )
        if re.search(rf"(?<![A-Za-z0-9_$]){re.escape(func)}(?![A-Za-z0-9_$])", source) is None:
            raise CodeRejected(
                f"handler {handler!r}: the source never mentions {func!r}, so it cannot export it",
                "handler",
            )

    def check_zip(self, names: Collection[str], read: ReadMember, handler: str) -> None:
        """The file the handler's module resolves to (as `require` would) is in the zip."""
        module, _, _ = handler.rpartition(".")
        if any(part == ".." for part in module.split("/")):
            raise CodeRejected(f"handler {handler!r} leaves the code's directory", "handler")
        candidates = [module] if module else [""]
        if "." in module:
            candidates.append(module.replace(".", "/"))
        for base in candidates:
            if _require_target(names, read, base) is not None:
                return
        if module:
            wanted = f"{module}.js, {module}/index.js or {module}/package.json"
        else:
            wanted = 'a package.json whose "main" is in the zip, or index.js, at its root'
        raise CodeRejected(f"handler {handler!r}: the zip has no {wanted}", "handler")


PYTHON_RULES = PythonRules()
NODE_RULES = NodeRules()
