"""What litellm's Router accepts, read from its installed source without importing litellm.

Checking a config file must not cost litellm's import (seconds) before the server
answers `initialize`, yet `router_settings` keys, routing strategy names and the
numeric keys of a deployment's `model_info` and `litellm_params` are litellm's to
define. They are read from the source of the pinned litellm with `ast`: the
parameters of `litellm.router._router_init` (the Router constructor's declared
signature), the members of `RoutingStrategyName`, the int and float fields of
the models litellm validates a deployment with (`numeric_parameters`), and the
`litellm_params` fields it declares a string or a list (`typed_parameters`). Tests hold
these equal to what the imported modules report, so a litellm upgrade that moves
them fails there and not in a user's config.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import re
from collections.abc import Callable
from pathlib import Path


class RouterNamesUnavailable(RuntimeError):
    """litellm's source no longer has the shape read here."""


def _litellm_dir() -> Path:
    spec = importlib.util.find_spec("litellm")
    if spec is None or spec.origin is None:
        raise RouterNamesUnavailable("litellm is not installed")
    return Path(spec.origin).parent


def _function(tree: ast.Module, name: str) -> ast.FunctionDef:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise RouterNamesUnavailable(f"litellm/router.py has no function {name}")


@functools.cache
def router_parameters() -> frozenset[str]:
    """The keyword arguments `litellm.Router(...)` declares (private ones left out)."""
    tree = ast.parse((_litellm_dir() / "router.py").read_text(encoding="utf-8"))
    args = _function(tree, "_router_init").args
    names = [a.arg for a in (*args.args, *args.kwonlyargs)]
    return frozenset(n for n in names if n != "self" and not n.startswith("_"))


@functools.cache
def routing_strategies() -> tuple[str, ...]:
    """The routing strategy names litellm's `RoutingStrategyName` lists, in its order."""
    tree = ast.parse((_litellm_dir() / "types" / "litellm_params.py").read_text(encoding="utf-8"))
    for node in tree.body:
        target = getattr(node, "target", None)
        if isinstance(node, ast.AnnAssign) and isinstance(target, ast.Name) and target.id == "RoutingStrategyName":
            value = node.value
            if isinstance(value, ast.Subscript):
                members = value.slice.elts if isinstance(value.slice, ast.Tuple) else [value.slice]
                names = tuple(m.value for m in members if isinstance(m, ast.Constant) and isinstance(m.value, str))
                if names:
                    return names
    raise RouterNamesUnavailable("litellm/types/litellm_params.py has no RoutingStrategyName literal")


Number = str
"""`"int"` or `"float"`: what litellm declares a numeric parameter as."""

# Where litellm declares what a deployment's two mappings hold: the pydantic models the Router validates a
# deployment's `model_info` and `litellm_params` with, and the TypedDict `get_model_info` answers (whose keys a
# deployment's `model_info` overrides). Each with its bases, as far as they are declared in these two modules.
_MODEL_INFO_CLASSES = (("router", "ModelInfo"), ("utils", "ModelInfoBase"))
_LITELLM_PARAMS_CLASSES = (("router", "LiteLLM_Params"),)
_MODULES = ("router", "utils")
_WRAPPERS = frozenset({"Optional", "Required", "NotRequired", "ReadOnly", "Annotated", "Union"})


def _members(node: ast.expr | None) -> set[str]:
    """The type names a field's annotation allows: `float | str | None`, `Optional[int]`, `Required[...]`,
    `Annotated[int, Field(...)]` unwrapped to their names ("None" for None)."""
    if node is None:
        return set()
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _members(node.left) | _members(node.right)
    if isinstance(node, ast.Constant):
        return {"None"} if node.value is None else {repr(node.value)}
    if isinstance(node, ast.Name):
        return {node.id}
    if isinstance(node, ast.Attribute):
        return {ast.unparse(node)}
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in _WRAPPERS:
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if node.value.id == "Annotated":
            args = args[:1]
        return set().union(*(_members(a) for a in args))
    return {ast.unparse(node)}


def _class_var(annotation: ast.expr) -> bool:
    return any(isinstance(n, ast.Name) and n.id == "ClassVar" for n in ast.walk(annotation))


def _number(members: set[str]) -> Number | None:
    """"float" where a float is allowed, "int" where an int and no float is (with `str` at most beside it, as
    litellm's `timeout: float | str` for an `os.environ/` reference); None for anything else."""
    if "bool" in members or not members & {"int", "float"}:
        return None
    return "float" if "float" in members else "int"


@functools.cache
def _types_source(module: str) -> str:
    return (_litellm_dir() / "types" / f"{module}.py").read_text(encoding="utf-8")


@functools.cache
def _class(module: str, name: str) -> ast.ClassDef | None:
    """Class `name` of `module`, parsed alone: from its `class` line to the next line at the left margin (the
    whole of litellm's types/utils.py takes half a second to parse, its few classes read here milliseconds)."""
    source = _types_source(module)
    found = re.search(rf"^class {re.escape(name)}\b.*?(?=^\S|\Z)", source, re.MULTILINE | re.DOTALL)
    if found is None:
        return None
    try:
        node = ast.parse(found.group(0)).body[0]
    except SyntaxError:  # a body line at the margin (a docstring's): the whole file, then
        node = next((n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == name), None)
    return node if isinstance(node, ast.ClassDef) else None


def _fields(module: str, name: str, kind_of: Callable[[set[str]], str | None] = _number) -> dict[str, str]:
    """The fields of class `name` in `module` and its bases found in the same modules to which `kind_of` gives a
    kind (numeric ones by default); a subclass's declaration wins."""
    node = _class(module, name)
    if node is None:
        raise RouterNamesUnavailable(f"litellm/types/{module}.py has no class {name}")
    out: dict[str, str] = {}
    for base in node.bases:
        if isinstance(base, ast.Name):
            for other in _MODULES:
                if _class(other, base.id) is not None:
                    out.update(_fields(other, base.id, kind_of))
                    break
    for stmt in node.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and not _class_var(stmt.annotation):
            kind = kind_of(_members(stmt.annotation))
            if kind is None:
                out.pop(stmt.target.id, None)
            else:
                out[stmt.target.id] = kind
    return out


@functools.cache
def numeric_parameters() -> tuple[dict[str, Number], dict[str, Number]]:
    """The keys litellm declares numeric in a deployment's `model_info` and in its `litellm_params`, each
    "int" or "float" (a key declared in more than one class: the first class's type)."""
    def union(classes: tuple[tuple[str, str], ...]) -> dict[str, Number]:
        found: dict[str, Number] = {}
        for module, name in reversed(classes):
            found.update(_fields(module, name))
        return found

    return union(_MODEL_INFO_CLASSES), union(_LITELLM_PARAMS_CLASSES)


Typed = str
"""`"str"`, `"list"` or `"list[str]"`: what litellm declares a string or list parameter as."""


def _typed(members: set[str]) -> Typed | None:
    """"str" for a field that takes a string and nothing else (None aside: unset); "list[str]" or "list" for one
    that takes only lists. None for anything else, a field that also takes a number or a mapping included: only
    what pydantic refuses outright is checked."""
    members = members - {"None"}
    if members == {"str"}:
        return "str"
    lists = {m for m in members if m in ("list", "List") or m.startswith(("list[", "List["))}
    if members and lists == members:
        return "list[str]" if all(m.endswith("[str]") for m in members) else "list"
    return None


@functools.cache
def typed_parameters() -> dict[str, Typed]:
    """The `litellm_params` keys `LiteLLM_Params` declares a string ("str") or a list ("list", "list[str]"):
    litellm refuses anything else there when it validates the deployment, on every call to its group."""
    found: dict[str, Typed] = {}
    for module, name in reversed(_LITELLM_PARAMS_CLASSES):
        found.update(_fields(module, name, _typed))
    return found
