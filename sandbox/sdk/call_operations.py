"""What a call client asks of its room and hears back about only in a completion: app and
chat messages, recording, transcription, live streaming (refused, as by a domain without
it) and telephony (dial-out, DTMF, SIP transfer)."""

from __future__ import annotations

import uuid
from typing import Any

from sandbox.sdk.call_core import CallCore


class CallOperations(CallCore):
    """The room operations of a ``CallClient``: each is one request, its completion gets
    None or the room's error text -- but for ``start_dialout`` and ``start_recording``, whose
    completions get a value first, as daily's do."""

    # -- messages --------------------------------------------------------------------------

    def send_app_message(self, message: Any, participant_id: Any = None, completion: Any = None) -> None:
        self._run(self._request("app_message", completion, message=message, recipient=participant_id))

    def send_prebuilt_chat_message(self, message: str, user_name: Any = None, completion: Any = None) -> None:
        self._run(self._request("send_prebuilt_chat_message", completion, message=message, user_name=user_name))

    # -- recording, transcription, streaming ---------------------------------------------------

    def start_recording(self, streaming_settings: Any = None, stream_id: Any = None, force_new: Any = None, completion: Any = None) -> None:
        """Start the room's recording; the completion gets ``(stream_id, error)``. Without a
        ``stream_id`` one is made up, as Daily does, so that the completion can name it."""
        stream = str(stream_id or uuid.uuid4())
        self._run(self._request_value("start_recording", completion, lambda _: stream, stream_id=stream,
                                      force_new=force_new))

    def stop_recording(self, stream_id: Any = None, completion: Any = None) -> None:
        self._run(self._request("stop_recording", completion, stream_id=stream_id))

    def update_recording(self, update_settings: Any, stream_id: Any = None, completion: Any = None) -> None:
        self._run(self._request("update_recording", completion, stream_id=stream_id))

    def start_transcription(self, settings: Any = None, completion: Any = None) -> None:
        self._run(self._request("start_transcription", completion, settings=settings))

    def stop_transcription(self, completion: Any = None) -> None:
        self._run(self._request("stop_transcription", completion))

    def update_transcription(self, participants: Any = None, instance_id: Any = None, completion: Any = None) -> None:
        self._run(self._request("update_transcription", completion, participants=participants))

    def start_live_stream_with_endpoints(self, endpoints: Any, streaming_settings: Any = None, stream_id: Any = None, force_new: Any = None, completion: Any = None) -> None:
        self._run(self._request("start_live_stream_with_endpoints", completion))

    def start_live_stream_with_rtmp_urls(self, rtmp_urls: Any, streaming_settings: Any = None, stream_id: Any = None, force_new: Any = None, completion: Any = None) -> None:
        self._run(self._request("start_live_stream_with_rtmp_urls", completion))

    def update_live_stream(self, update_settings: Any, stream_id: Any = None, completion: Any = None) -> None:
        self._run(self._request("update_live_stream", completion))

    def stop_live_stream(self, stream_id: Any = None, completion: Any = None) -> None:
        self._run(self._request("stop_live_stream", completion))

    def add_live_streaming_endpoints(self, endpoints: Any, stream_id: Any = None, completion: Any = None) -> None:
        self._run(self._request("add_live_streaming_endpoints", completion))

    def remove_live_streaming_endpoints(self, endpoints: Any, stream_id: Any = None, completion: Any = None) -> None:
        self._run(self._request("remove_live_streaming_endpoints", completion))

    # -- telephony -----------------------------------------------------------------------------

    def start_dialout(self, settings: Any, completion: Any = None) -> None:
        """Dial out; the completion gets ``(session_id, error)``, the session id being the
        phone participant's."""
        self._run(self._request_value("start_dialout", completion, lambda answer: answer["sessionId"],
                                      settings=settings))

    def stop_dialout(self, participant_id: str, completion: Any = None) -> None:
        self._run(self._request("stop_dialout", completion, participant_id=participant_id))

    def send_dtmf(self, settings: Any, completion: Any = None) -> None:
        self._run(self._request("send_dtmf", completion, settings=settings))

    def sip_call_transfer(self, settings: Any, completion: Any = None) -> None:
        self._run(self._request("sip_call_transfer", completion, settings=settings))

    def sip_refer(self, settings: Any, completion: Any = None) -> None:
        self._run(self._request("sip_refer", completion, settings=settings))
