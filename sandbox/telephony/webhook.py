"""An incoming call's voice webhook, as Twilio posts it: form-encoded, signed with
``X-Twilio-Signature`` when the account's auth token is known, answered with TwiML."""

from __future__ import annotations

import aiohttp

from sandbox.telephony import signature
from sandbox.telephony.network import API_VERSION

USER_AGENT = "TwilioProxy/1.1"
TIMEOUT_S = 15.0  # Twilio's default wait for a webhook's answer


def voice_params(account_sid: str, call_sid: str, from_number: str, to_number: str,
                 country: str = "US") -> list[tuple[str, str]]:
    """The form Twilio posts for a ringing inbound call (no caller ID lookup: places are empty)."""
    params = {"AccountSid": account_sid, "ApiVersion": API_VERSION, "CallSid": call_sid, "CallStatus": "ringing",
              "Direction": "inbound", "From": from_number, "Caller": from_number, "To": to_number,
              "Called": to_number}
    for who in ("From", "Caller", "To", "Called"):
        params.update({f"{who}City": "", f"{who}State": "", f"{who}Zip": "", f"{who}Country": country})
    return sorted(params.items())


async def post(session: aiohttp.ClientSession, url: str, params: list[tuple[str, str]],
               auth_token: str = "") -> tuple[int, str]:
    """POST the webhook to ``url`` and answer (HTTP status, body).

    Raises ``aiohttp.ClientError`` or ``TimeoutError`` if no answer comes."""
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    if auth_token:
        headers[signature.HEADER] = signature.sign(auth_token, url, params)
    async with session.post(url, data=params, headers=headers,
                            timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as resp:
        return resp.status, await resp.text()
