"""The voice activity detection settings Daily's RTVI clients send in a ``/bots/start`` body.

Their client config carries a ``vad`` entry beside ``stt``, ``llm`` and ``tts``::

    {"service": "vad", "options": [{"name": "params", "value": {"stop_secs": 0.5}}]}

``params`` are Pipecat's ``VADParams`` under the same names (``confidence``,
``start_secs``, ``stop_secs``, ``min_volume``): the Silero analyzer of the voice and vision
profiles takes them as given, and Pipecat's defaults stand for the rest. ``services.vad``
may name ``silero``, the only VAD those profiles run. The speech-to-speech profile has no
VAD of its own (OpenAI takes turns: its ``turn_detection``), so a ``vad`` entry there is
refused with that advice.

Shared by the supervisor (a 422 naming the option at start) and the worker (the analyzer's
parameters), so it imports neither side, nor Pipecat. Each check raises ``ValueError`` whose
message names the offending path and says what to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

VAD_SERVICE = "vad"
VAD_PROVIDERS = ("silero",)  # what services.vad may name: the analyzer the profiles run
# Pipecat's VADParams: name -> the range it makes sense in (confidence and volume are 0..1).
PARAMS: dict[str, tuple[float, float]] = {
    "confidence": (0.0, 1.0),
    "start_secs": (0.0, 10.0),
    "stop_secs": (0.0, 10.0),
    "min_volume": (0.0, 1.0),
}
EXAMPLE = '{"service": "vad", "options": [{"name": "params", "value": {"stop_secs": 0.5}}]}'


def check_provider(provider: Any, *, has_vad: bool = True) -> None:
    """Check ``services.vad``; raises ``ValueError`` for anything but ``silero`` on a
    profile that runs it."""
    if not has_vad:
        raise ValueError("services.vad: this profile has no VAD of its own (the speech-to-speech service takes "
                         "turns: set its turn_detection in config llm); leave services.vad out")
    if provider not in VAD_PROVIDERS:
        raise ValueError(f"services.vad: unknown provider {provider!r}; the voice profiles run Silero VAD: "
                         f"leave services.vad out or name \"silero\", and tune it with a config entry {EXAMPLE}")


def entry_params(entry: Mapping[str, Any], where: str) -> dict[str, float]:
    """The VAD parameters one ``config`` entry of service ``vad`` sets (``where``: its path,
    ``config[2]``). Raises ``ValueError`` naming a malformed option, an unknown parameter
    or a value out of range."""
    options = entry.get("options", [])
    if not isinstance(options, list):
        raise ValueError(f"{where}.options: expected a list of {{name, value}}")
    params: dict[str, float] = {}
    for j, option in enumerate(options):
        at = f"{where}.options[{j}]"
        if not isinstance(option, Mapping) or "name" not in option or "value" not in option:
            raise ValueError(f'{at}: expected {{"name", "value"}}')
        if option["name"] != "params":
            raise ValueError(f"{at}.name: unknown vad option {option['name']!r}; a vad entry takes params "
                             f"({', '.join(PARAMS)}), e.g. {EXAMPLE}")
        value = option["value"]
        if not isinstance(value, Mapping):
            raise ValueError(f"{at}.value: expected an object of {', '.join(PARAMS)}")
        for name, number in value.items():
            if name not in PARAMS:
                raise ValueError(f"{at}.value.{name}: unknown VAD parameter (known: {', '.join(PARAMS)})")
            low, high = PARAMS[name]
            if isinstance(number, bool) or not isinstance(number, int | float) or not low <= number <= high:
                raise ValueError(f"{at}.value.{name}: expected a number from {low:g} to {high:g}, got {number!r}")
            params[name] = float(number)
    return params


def vad_params(config: Any) -> dict[str, float]:
    """The VAD parameters a ``config`` list sets, every ``vad`` entry merged in order (a
    later one wins, as for the other services). Raises ``ValueError`` as ``entry_params``."""
    merged: dict[str, float] = {}
    for i, entry in enumerate(config if isinstance(config, list) else []):
        if isinstance(entry, Mapping) and entry.get("service") == VAD_SERVICE:
            merged.update(entry_params(entry, f"config[{i}]"))
    return merged
