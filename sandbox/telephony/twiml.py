"""TwiML, as a phone call follows it: the verbs of a voice webhook's answer, in order.

Followed: ``<Say>`` (its text is noted, not spoken), ``<Pause length>``, ``<Connect><Stream
url>`` with ``<Parameter name value>`` children (a bidirectional Media Stream), ``<Reject
reason>``, ``<Hangup/>``. Any other verb is kept as ``Verb.OTHER`` under its name, for the
report, and skipped.
"""

from __future__ import annotations

import enum
import xml.etree.ElementTree as ET

import msgspec


class TwimlError(ValueError):
    """The answer is not TwiML: not XML, or its root is not ``<Response>``."""


class Verb(enum.Enum):
    SAY = "Say"
    PAUSE = "Pause"
    STREAM = "Connect/Stream"
    REJECT = "Reject"
    HANGUP = "Hangup"
    OTHER = "other"


class Instruction(msgspec.Struct, frozen=True):
    """One verb: ``text`` for Say, ``seconds`` for Pause, ``url`` and ``parameters`` for a
    Stream, ``reason`` for Reject (``rejected`` or ``busy``), ``name`` for any verb."""

    verb: Verb
    name: str
    text: str = ""
    seconds: float = 0.0
    url: str = ""
    parameters: dict[str, str] = {}
    reason: str = ""


def parse(document: str | bytes) -> list[Instruction]:
    """The verbs of ``document``, in the order a call follows them.

    Raises ``TwimlError`` if it is not XML with a ``<Response>`` root, or a ``<Stream>``
    has no ``url``."""
    try:
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        raise TwimlError(f"not XML: {exc}") from None
    if root.tag != "Response":
        raise TwimlError(f"the root element is <{root.tag}>, not <Response>")
    return [_instruction(element) for element in root]


def _instruction(element: ET.Element) -> Instruction:
    tag = element.tag
    if tag == "Say":
        return Instruction(Verb.SAY, tag, text=(element.text or "").strip())
    if tag == "Pause":
        return Instruction(Verb.PAUSE, tag, seconds=_seconds(element.get("length", "1")))
    if tag == "Reject":
        return Instruction(Verb.REJECT, tag, reason=element.get("reason", "rejected"))
    if tag == "Hangup":
        return Instruction(Verb.HANGUP, tag)
    stream = element.find("Stream") if tag == "Connect" else None
    if stream is None:
        return Instruction(Verb.OTHER, tag)
    url = stream.get("url", "").strip()
    if not url:
        raise TwimlError("<Connect><Stream> has no url")
    parameters = {p.get("name", ""): p.get("value", "") for p in stream.iter("Parameter") if p.get("name")}
    return Instruction(Verb.STREAM, "Connect/Stream", url=url, parameters=parameters)


def _seconds(text: str) -> float:
    # Twilio takes a whole number of seconds and uses 1 for anything else.
    try:
        return float(max(0, int(text)))
    except ValueError:
        return 1.0
