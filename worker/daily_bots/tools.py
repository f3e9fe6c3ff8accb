"""The LLM's ``tools`` option of a Daily Bots request: the functions the LLM may call, in
whichever provider's shape the request wrote them, as one ``Tool`` each.

Daily Bots takes ``tools`` in the shape of the LLM's own API (``config`` llm options, or
``service_options.<llm>``):

- OpenAI's, for ``openai``, ``custom_llm``, ``together``, ``groq``, ``grok``:
  ``[{"type": "function", "function": {"name", "description", "parameters"}}]``
- Anthropic's: ``[{"name", "description", "input_schema"}]``
- Gemini's: ``[{"function_declarations": [{"name", "description", "parameters"}]}]``

Any of them is accepted for any provider: the pipeline hands Pipecat one ``FunctionSchema``
per tool, and Pipecat's adapter writes it in the provider's shape. A schema is a JSON
schema ``object``; its ``properties`` and ``required`` are what a ``FunctionSchema`` carries
(other top-level keywords of it, such as ``additionalProperties``, are not passed on).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI and Anthropic both accept


class Tool(msgspec.Struct, frozen=True, kw_only=True):
    """One function the LLM may call."""

    name: str
    description: str = ""
    properties: dict[str, Any] = msgspec.field(default_factory=dict)
    required: list[str] = msgspec.field(default_factory=list)


def parse_tools(value: Any, path: str = "config.llm.tools") -> list[Tool]:
    """The functions ``value`` (the ``tools`` option) declares, in order.

    Raises ``ValueError`` naming the offending path (``config.llm.tools[1].function.name``)
    for a value that is not a list of tools in one of the shapes above, a bad name or
    schema, or a name declared twice."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{path}: expected a list of tools")
    tools: list[Tool] = []
    for i, entry in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: expected a tool object")
        if "function_declarations" in entry:  # Gemini's
            declarations = entry["function_declarations"]
            if not isinstance(declarations, list):
                raise ValueError(f"{where}.function_declarations: expected a list of functions")
            tools.extend(_function(d, f"{where}.function_declarations[{j}]", "parameters")
                         for j, d in enumerate(declarations))
        elif "function" in entry or entry.get("type") == "function":  # OpenAI's
            tools.append(_function(entry.get("function"), f"{where}.function", "parameters"))
        elif "input_schema" in entry:  # Anthropic's
            tools.append(_function(entry, where, "input_schema"))
        elif "name" in entry:  # a bare declaration, as Pipecat writes one
            tools.append(_function(entry, where, "parameters"))
        else:
            raise ValueError(f"{where}: expected {{\"type\": \"function\", \"function\": …}} (OpenAI), "
                             f"{{\"name\", \"input_schema\"}} (Anthropic) or {{\"function_declarations\": …}} (Gemini)")
    seen: set[str] = set()
    for tool in tools:
        if tool.name in seen:
            raise ValueError(f"{path}: function {tool.name!r} is declared twice")
        seen.add(tool.name)
    return tools


def _function(declaration: Any, where: str, schema_key: str) -> Tool:
    if not isinstance(declaration, Mapping):
        raise ValueError(f"{where}: expected a function object")
    name = declaration.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError(f"{where}.name: expected 1 to 64 letters, digits, '_' or '-', got {name!r}")
    description = declaration.get("description", "")
    if not isinstance(description, str):
        raise ValueError(f"{where}.description: expected a string")
    schema = declaration.get(schema_key)
    if schema is None:
        return Tool(name=name, description=description)
    if not isinstance(schema, Mapping) or schema.get("type", "object") != "object":
        raise ValueError(f"{where}.{schema_key}: expected a JSON schema of type object")
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping) or not all(isinstance(p, Mapping) for p in properties.values()):
        raise ValueError(f"{where}.{schema_key}.properties: expected an object of property schemas")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) and r in properties for r in required):
        raise ValueError(f"{where}.{schema_key}.required: expected a list of the properties' names")
    return Tool(name=name, description=description, properties={k: dict(v) for k, v in properties.items()},
                required=list(required))
