"""What litellm's Router accepts, read from its installed source without importing litellm.

Checking a config file must not cost litellm's import (seconds) before the server
answers `initialize`, yet `router_settings` keys and routing strategy names are
litellm's to define. Both are read from the source of the pinned litellm with
`ast`: the parameters of `litellm.router._router_init` (the Router constructor's
declared signature) and the members of `RoutingStrategyName`. A test holds these
equal to what the imported modules report, so a litellm upgrade that moves them
fails there and not in a user's config.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
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
