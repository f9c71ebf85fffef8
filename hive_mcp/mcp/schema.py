"""Tool schemas as short as the checks they state: what `tools/list` costs every attached client.

pydantic's JSON schema repeats itself for a reader that needs none of it: a
`title` on every field, `anyOf [X, null]` with `default: null` on every optional
field, docstring indentation in descriptions. `compact` keeps every property,
type, bound, pattern, enum and `required` list, and drops only those. The server
validates arguments with the pydantic models themselves (args.py), so the
published schema describes the checks; it is not what enforces them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from mcp_types import ToolAnnotations
from pydantic import BaseModel

from mcp.server.mcpserver.tools import Tool as MCPTool

from ..text import one_line

_NULL = {"type": "null"}
_DEFS = "#/$defs/"
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMAS = ("items", "additionalProperties", "not", "contains")
_SCHEMA_MAPS = ("properties", "$defs", "patternProperties")


def describe(text: str) -> str:
    """A docstring as one paragraph: no indentation, no line breaks."""
    return one_line(inspect.cleandoc(text), 10_000)


def tool_schema(schema: dict[str, Any], *, output: bool = False) -> dict[str, Any]:
    """A model's JSON schema as a tool publishes it: `$defs` inlined, then compacted.

    Each tool's schema stands alone in `tools/list` (a `$ref` cannot reach another
    tool's `$defs`), and every definition here is used once, so inlining costs
    nothing and saves the names. A model's own description (its docstring, for
    the code's reader) goes; the tool's description and the fields' remain. An
    output schema also drops its defaults: a result always carries every field.
    """
    defs = {name: _undescribed(sub) for name, sub in schema.get("$defs", {}).items()}
    inlined = _inline(_undescribed(schema), defs, ())
    return compact(inlined, nullable=output, defaults=not output)


def _undescribed(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k not in ("$defs", "description")}


def _inline(node: Any, defs: dict[str, Any], seen: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_inline(item, defs, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_DEFS) and ref[len(_DEFS) :] in defs:
        name = ref[len(_DEFS) :]
        if name in seen:
            raise ValueError(f"recursive schema definition {name!r} cannot be inlined")
        target = _inline(defs[name], defs, (*seen, name))
        return {**target, **{k: _inline(v, defs, seen) for k, v in node.items() if k != "$ref"}}
    return {k: _inline(v, defs, seen) for k, v in node.items()}


def compact(schema: dict[str, Any], *, nullable: bool = False, defaults: bool = True) -> dict[str, Any]:
    """`schema` without titles, null arms or indentation (a new dict; `schema` is not changed).

    `additionalProperties: true` goes too (it is what JSON Schema assumes), and so
    do `type: string` beside an enum of strings, empty defaults (null, false, "")
    and, when `defaults` is false, every default.

    For an input schema (`nullable=False`) an optional field is its plain type and
    not required: a client that omits it gets the same as one that sends null.
    For an output schema (`nullable=True`) a field that may be null says so in a
    `type` list, so a validating client accepts the null it will be sent.
    """
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if (key == "title" and isinstance(value, str)) or (key == "additionalProperties" and value is True):
            continue
        if key == "default" and (not defaults or _is_empty(value)):
            continue
        if key == "type" and _is_enum_of_strings(schema):
            continue
        if key == "description" and isinstance(value, str):
            out[key] = describe(value)
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: compact(sub, nullable=nullable, defaults=defaults) for name, sub in value.items()}
        elif key in _SUBSCHEMA_LISTS and isinstance(value, list):
            out[key] = [compact(sub, nullable=nullable, defaults=defaults) for sub in value]
        elif key in _SUBSCHEMAS and isinstance(value, dict):
            out[key] = compact(value, nullable=nullable, defaults=defaults)
        else:
            out[key] = value
    arms = out.get("anyOf")
    if isinstance(arms, list) and _NULL in arms:
        out = _drop_null(out, arms, nullable)
    return out


def _is_empty(value: Any) -> bool:
    """A default that tells a reader nothing: what an omitted optional field means anyway."""
    return value is None or value is False or (isinstance(value, (str, list, dict)) and not value)


def _is_enum_of_strings(schema: dict[str, Any]) -> bool:
    """An enum of strings already says its type."""
    enum = schema.get("enum")
    return schema.get("type") == "string" and isinstance(enum, list) and all(isinstance(e, str) for e in enum)


def _drop_null(node: dict[str, Any], arms: list[Any], nullable: bool) -> dict[str, Any]:
    rest = [arm for arm in arms if arm != _NULL]
    node = {k: v for k, v in node.items() if k != "anyOf" and not (k == "default" and v is None)}
    if len(rest) != 1:
        return {**node, "anyOf": rest + ([_NULL] if nullable else [])}
    [arm] = rest
    if nullable:
        if isinstance(arm.get("type"), str) and not {"enum", "const"} & set(arm):  # other keywords pass a null
            return {**node, **arm, "type": [arm["type"], "null"]}
        return {**node, "anyOf": [arm, _NULL]}
    return {**arm, **node}


def build_tool(
    fn: Callable[..., Any],
    args_model: type[BaseModel],
    annotations: ToolAnnotations,
    model_field: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    meta: dict[str, Any] | None = None,
) -> MCPTool:
    """An MCPServer tool whose input schema is `args_model`'s, compacted (the function validates the raw arguments
    itself). Every tool is built here, the same way.

    `model_field` rewrites the `model` field's schema (to name the catalogue's callable names).
    """
    tool = MCPTool.from_function(fn, description=describe(fn.__doc__ or ""), annotations=annotations, meta=meta)
    tool.parameters = tool_schema(args_model.model_json_schema())
    if model_field is not None:
        fields = tool.parameters["properties"]
        fields["model"] = model_field(fields["model"])
    output = tool.fn_metadata.output_schema
    if output is not None:
        tool.fn_metadata.output_schema = tool_schema(output, output=True)
    return tool
