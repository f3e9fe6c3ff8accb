"""The stand-in LLM's mind: a canned, deterministic reply to a chat conversation.

- After a tool's result (the last messages are ``tool`` messages): "The result is: <content>."
- A user turn that names a tool's function, when the request offers ``tools`` and its
  ``tool_choice`` is not ``"none"``: a call of that function, with arguments built from its
  JSON schema (below). ``"required"`` calls the first tool when none is named; a
  ``{"type": "function", "function": {"name": …}}`` choice always calls that one.
- No user turn yet, or a user turn asking to be greeted ("greet", "introduce yourself",
  "say hello"): ``GREETING``.
- Otherwise a quote of the last user turn: "You said: <text>."

A function is named when the user's text contains its name (``get_weather`` or "get
weather") or one of its name's words that is not a generic verb ("weather"). Arguments:
each property of the schema gets the words that follow its name in the user's text (up to
the next punctuation: "… with city Paris." gives ``city="Paris"``), else the schema's
``default``, else a fixed value per type (``FIXED_STRING``, 1, true, the first ``enum``
value, lists of one, objects filled the same way).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

GREETING = "Hello! I am the sandbox's stand-in assistant. Say something and I will repeat it."
FIXED_STRING = "sandbox"
# Verbs too common in function names ("get_weather", "lookup_order") to show which one is meant.
GENERIC_WORDS = frozenset({"get", "set", "fetch", "find", "list", "lookup", "look", "make", "call", "create",
                           "update", "delete", "check", "query", "search", "send", "run", "do"})
GREET = re.compile(r"\b(greet|introduce yourself|say hello|say hi)\b", re.IGNORECASE)


class RequestError(ValueError):
    """A chat request the stand-in cannot answer; the message says which field is wrong."""


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI sends it


@dataclass(frozen=True)
class Reply:
    """Either words or function calls, as one assistant turn."""

    text: str | None
    tool_calls: tuple[ToolCall, ...] = ()


def text_of(message: dict[str, Any]) -> str:
    """A chat message's text, whether its content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p)
    return ""


def reply_to(body: dict[str, Any]) -> Reply:
    """The reply to a chat completion request's ``messages``, ``tools`` and ``tool_choice``.

    Raises ``RequestError`` if ``messages`` is not a non-empty list of objects, or if
    ``tool_choice`` forces a function that ``tools`` does not offer."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise RequestError("messages must be a non-empty array of message objects")
    results = _trailing_tool_results(messages)
    if results:
        return Reply(text=f"The result is: {'; '.join(results)}.")
    functions = [t["function"] for t in body.get("tools") or []
                 if isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("function"), dict)]
    user_texts = [text_of(m) for m in messages if m.get("role") == "user"]
    if messages[-1].get("role") == "user":
        called = _functions_to_call(functions, body.get("tool_choice"), user_texts[-1],
                                    parallel=body.get("parallel_tool_calls") is not False)
        if called:
            return Reply(text=None, tool_calls=tuple(_call(f, user_texts[-1], len(messages), i)
                                                     for i, f in enumerate(called)))
    if not user_texts or GREET.search(user_texts[-1]):
        return Reply(text=GREETING)
    said = user_texts[-1].strip().rstrip(".!?").strip()
    return Reply(text=f"You said: {said}." if said else "I heard nothing.")


def _trailing_tool_results(messages: list[dict[str, Any]]) -> list[str]:
    results: list[str] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.insert(0, text_of(message))
    return results


def _functions_to_call(functions: list[dict[str, Any]], choice: Any, text: str, *,
                       parallel: bool) -> list[dict[str, Any]]:
    if not functions or choice == "none":
        return []
    if isinstance(choice, dict):
        forced = (choice.get("function") or {}).get("name")
        chosen = [f for f in functions if f.get("name") == forced]
        if not chosen:
            raise RequestError(f"tool_choice names function {forced!r}, which tools does not offer")
        return chosen
    named = [f for f in functions if _names(text, str(f.get("name", "")))]
    if not named and choice == "required":
        named = functions[:1]
    return named if parallel else named[:1]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _names(text: str, function: str) -> bool:
    """Whether ``text`` names ``function`` (its name, its name spaced out, or a telling word of it)."""
    if not function:
        return False
    words = _words(text)
    parts = _words(re.sub(r"(?<=[a-z])(?=[A-Z])", " ", function))  # getWeather, get_weather: get, weather
    if function.lower() in text.lower() or f" {' '.join(parts)} " in f" {' '.join(words)} ":
        return True
    return any(p in words for p in parts if len(p) > 2 and p not in GENERIC_WORDS)


def _call(function: dict[str, Any], text: str, turn: int, index: int) -> ToolCall:
    name = str(function.get("name"))
    parameters = function.get("parameters")
    arguments = _value("", parameters, text) if isinstance(parameters, dict) and parameters.get("properties") else {}
    encoded = json.dumps(arguments)
    # The same conversation gets the same id; another turn or another call gets another.
    digest = hashlib.sha256(f"{turn}:{index}:{name}:{encoded}".encode()).hexdigest()[:24]
    return ToolCall(id=f"call_{digest}", name=name, arguments=encoded)


def _value(name: str, schema: Any, text: str) -> Any:
    """A value for property ``name`` of ``schema``, taken from ``text`` where it says one."""
    if not isinstance(schema, dict):
        return FIXED_STRING
    kind = schema.get("type")
    if isinstance(kind, list):  # ["string", "null"]: the first real type
        kind = next((k for k in kind if k != "null"), None)
    said = _said_after(name, text) if name else None
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        mentioned = [v for v in schema["enum"] if str(v).lower() in _words(text)]
        return (mentioned or schema["enum"])[0]
    if kind == "object":
        properties = schema.get("properties") or {}
        return {key: _value(key, sub, text) for key, sub in properties.items()}
    if kind == "array":
        return [_value(name, schema.get("items"), text)]
    if kind in ("integer", "number"):
        number = re.match(r"-?\d+(\.\d+)?", said or "")
        if number:
            return float(number.group()) if kind == "number" and number.group(1) else int(float(number.group()))
        return schema.get("default", 1)
    if kind == "boolean":
        return schema.get("default", True)
    if said:
        return said
    return schema.get("default", FIXED_STRING)


def _said_after(name: str, text: str) -> str | None:
    """The words after ``name`` (or its spaced-out form) in ``text``, up to punctuation."""
    spaced = r"[\s_]+".join(re.escape(p) for p in re.split(r"[_\s]+", name) if p)
    found = re.search(rf"\b{spaced}\b\s*(?:is|=|:)?\s*([^,.;!?]+)", text, re.IGNORECASE)
    return found.group(1).strip() if found else None
