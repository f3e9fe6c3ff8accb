"""The OpenAPI 3.1 document of the HTTP API.

Request schemas are generated from the very msgspec Structs the views decode into
(``supervisor.http.bodies``), so the document cannot drift from the code; a test checks
that every route is documented and every documented path is routed.
"""

from __future__ import annotations

from typing import Any

import msgspec

from supervisor.http.bodies import AppMessageBody, BotsStartBody, DialinWebhook, PipecatStartBody
from supervisor.sessions.state import EndReason, SessionState

ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "malformed or invalid body (invalid-request-error, the field path in info)",
            401: "missing or wrong bearer key", 403: "outside the session's own room and call (forbidden-error)",
            404: "unknown session", 409: "the session cannot do that now",
            410: "a WebSocket URL already used, expired, or whose session has ended",
            413: "body over 1 MB", 422: "unknown profile, service, provider or option",
            429: "every worker busy and max_workers reached (Retry-After)", 502: "Daily REST failed after retries",
            503: "the supervisor is draining, or (cluster) fenced or unable to read the cluster directory "
                 "(Retry-After)", 504: "Daily REST timed out after retries"}
    return {str(c): {"description": text[c], **_json(ERROR)} for c in codes}


SESSION: dict[str, Any] = {
    "type": "object",
    "required": ["session_id", "state", "profile", "participants"],
    "properties": {
        "session_id": {"type": "string"},
        "state": {"type": "string", "enum": [state.value for state in SessionState]},
        "profile": {"type": "string"},
        "kind": {"type": "string"},
        "transport": {"type": "string", "enum": ["daily", "phone", "webrtc"]},
        "room_url": {"type": ["string", "null"]},
        "room_created": {"type": "boolean"},
        "worker_id": {"type": ["string", "null"]},
        "worker_pid": {"type": ["integer", "null"]},
        "participants": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "string"}, "name": {"type": "string"}, "is_bot": {"type": "boolean"}}}},
        "requested_at": {"type": ["number", "null"]},
        "assigned_at": {"type": ["number", "null"]},
        "joined_at": {"type": ["number", "null"]},
        "ended_at": {"type": ["number", "null"]},
        "end_reason": {"type": ["string", "null"], "enum": [*(reason.value for reason in EndReason), None]},
        "end_detail": {"type": ["string", "null"], "description": "how it ended, in a line (any end)"},
        "error": {"type": ["string", "null"], "description": "what went wrong: end_detail when the end is a failure"},
        "frames": {"type": "object", "properties": {
            name: {"type": "integer"} for name in ("in", "out", "dropped", "worker_out", "worker_dropped")}},
        "failovers": {"type": "integer"},
        "failover_gap_ms": {"type": "number"},
        "max_duration_s": {"type": "integer"},
        "turns": {"type": "object", "description": "what Pipecat measured: count, voice_to_voice_s {p50, p90, p99, "
                  "last}, ttfb_s and processing_s {service: {p50, p90, p99}}, recent (the last 5 turns)"},
        "usage": {"type": "object", "description": "llm_prompt_tokens, llm_completion_tokens, tts_characters, ...",
                  "additionalProperties": {"type": "number"}},
        "resources": {"type": "object", "description": "the worker's cpu_s, cpu_percent, pss_mb and samples "
                      "[[t, cpu_percent, pss_mb], ...]"},
    },
}
_DAILY_PROXY: dict[str, Any] = {
    "summary": "Daily's REST API for a hosted bot, scoped to its own session's room and call",
    "description": "Bearer: the session's own key (the bot's DAILY_API_KEY), never the account's. "
                   "Forwarded to Daily under the supervisor's rate limits; anything outside the session's "
                   "room and call is 403 forbidden-error.",
    "security": [],
    "parameters": [{"name": "tail", "in": "path", "required": True, "schema": {"type": "string"},
                    "description": "the Daily REST path, e.g. rooms/NAME or dialin/pinlessCallUpdate"}],
    "responses": {"200": {"description": "Daily's reply", **_json({})}, **_errors(401, 403, 502, 504)},
}
SESSION_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
PROFILE = {"name": "profile", "in": "path", "required": True, "schema": {"type": "string"}}
_PHONE_SOCKET: dict[str, Any] = {
    "summary": "A phone call's Media Stream (Twilio, Telnyx, Plivo, Exotel) on its session's one-time URL",
    "description": "The token is the session's (wsUrl, or the TwiML's <Stream url>): in the path, or ?token=. "
                   "Good for one call until ws_url_ttl_s; a browser Origin is refused unless allowed.",
    "security": [],
    "parameters": [PROFILE, {"name": "token", "in": "query", "required": False, "schema": {"type": "string"}}],
    "responses": {"101": {"description": "switching to WebSocket"}, **_errors(401, 403, 410, 503)} | {"403": {
        "description": "a browser Origin not in telephony.allowed_origins", **_json(ERROR)}},
}


def document() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        [BotsStartBody, PipecatStartBody, DialinWebhook, AppMessageBody], ref_template="#/components/schemas/{name}"
    )
    components["Error"] = {"type": "object", "required": ["error", "info"],
                           "properties": {"error": {"type": "string"}, "info": {"type": "string"}}}
    components["Session"] = SESSION
    ref = "#/components/schemas/{}".format
    return {
        "openapi": "3.1.0",
        "info": {"title": "callfleet", "version": "1", "description": "Start and steer Daily bot sessions."},
        "components": {"schemas": components,
                       "securitySchemes": {
                           "bearer": {"type": "http", "scheme": "bearer"},
                           # With [dialin] hmac_secret_env: Daily's pinless signature over
                           # "{X-Pinless-Timestamp}.{raw body}" replaces the bearer key on /dialin.
                           "pinlessSignature": {"type": "apiKey", "in": "header", "name": "X-Pinless-Signature"},
                           # With [telephony] auth_token_env: Twilio's signature replaces it on /telephony/twilio.
                           "twilioSignature": {"type": "apiKey", "in": "header", "name": "X-Twilio-Signature"},
                       }},
        "security": [{"bearer": []}],
        "paths": {
            "/bots/start": {"post": {
                "summary": "Start a bot the Daily Bots way",
                "requestBody": {"required": True, **_json({"$ref": ref("BotsStartBody")})},
                "responses": {"200": {"description": "started", **_json({"type": "object", "required": [
                    "room_url", "token", "session_id", "stream_token"], "properties": {
                    "room_url": {"type": "string"}, "token": {"type": "string"}, "session_id": {"type": "string"},
                    "stream_token": {"type": "string"}}})}, **_errors(400, 401, 413, 422, 429, 502, 503, 504)}}},
            "/start": {"post": {
                "summary": "Start a bot the Pipecat Cloud way (transport \"websocket\": a phone call; \"webrtc\": "
                           "a browser over SmallWebRTC, its body {transport, profile?, body?})",
                "requestBody": {"required": True, **_json({"$ref": ref("PipecatStartBody")})},
                "responses": {"200": {"description": "started", **_json({"oneOf": [
                    {"type": "object", "required": ["dailyRoom", "dailyToken", "sessionId", "streamToken"],
                     "properties": {"dailyRoom": {"type": "string"}, "dailyToken": {"type": "string"},
                                    "sessionId": {"type": "string"}, "streamToken": {"type": "string"}}},
                    {"type": "object", "required": ["wsUrl", "sessionId"], "description": "transport websocket: "
                     "the call's one-time WebSocket URL", "properties": {"wsUrl": {"type": "string"},
                                                                         "sessionId": {"type": "string"}}},
                    {"type": "object", "required": ["sessionId", "iceConfig"], "description": "transport webrtc: "
                     "POST the browser's offer to /sessions/{sessionId}/api/offer", "properties": {
                         "sessionId": {"type": "string"}, "iceConfig": {"type": "object", "properties": {
                             "iceServers": {"type": "array", "items": {"type": "object"}}}}}}]})},
                    **_errors(400, 401, 413, 422, 429, 502, 503, 504)}}},
            "/telephony/twilio": {"post": {
                "summary": "Twilio's voice webhook: TwiML connecting the call to a new session of "
                           "[telephony] twilio_profile (<Reject reason=\"busy\"/> when no worker is free)",
                "security": [{"bearer": []}, {"twilioSignature": []}],
                "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
                    "schema": {"type": "object", "required": ["CallSid"], "properties": {
                        "CallSid": {"type": "string"}, "From": {"type": "string"}, "To": {"type": "string"}}}}}},
                "responses": {"200": {"description": "TwiML", "content": {"application/xml": {
                    "schema": {"type": "string"}}}}, **_errors(400, 401, 413, 422, 502, 504)}}},
            "/ws/{profile}": {"get": _PHONE_SOCKET},
            "/ws/{profile}/{token}": {"get": {**_PHONE_SOCKET, "parameters": [
                PROFILE, {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}]}},
            "/dialin": {"post": {
                "summary": "Daily's dial-in webhook ({\"test\": ...} is answered {\"status\": \"OK\"})",
                "security": [{"bearer": []}, {"pinlessSignature": []}],
                "requestBody": {"required": True, **_json({"oneOf": [{"$ref": ref("DialinWebhook")},
                                                                     {"type": "object", "required": ["test"]}]})},
                "responses": {"200": {"description": "call accepted", **_json({"type": "object", "properties": {
                    "status": {"type": "string"}, "session_id": {"type": "string"}, "room_url": {"type": "string"}}})},
                    **_errors(400, 401, 413, 422, 429, 502, 503, 504)}}},
            "/sessions": {"get": {
                "summary": "Live sessions and recent history",
                "parameters": [{"name": "state", "in": "query", "required": False, "schema": SESSION["properties"]["state"]}],
                "responses": {"200": {"description": "sessions", **_json({"type": "object", "properties": {
                    "data": {"type": "array", "items": {"$ref": ref("Session")}},
                    # cluster mode with the directory unreadable: only this node's sessions
                    "partial": {"type": "boolean"}, "info": {"type": "string"}}})}, **_errors(400, 401)}}},
            "/sessions/{id}": {
                "get": {"summary": "One session", "parameters": [SESSION_ID],
                        "responses": {"200": {"description": "the session", **_json({"$ref": ref("Session")})},
                                      **_errors(401, 404, 503)}},
                "delete": {"summary": "Stop a session: the bot leaves, a room we created is deleted",
                           "parameters": [SESSION_ID],
                           "responses": {"200": {"description": "stopping", **_json({"type": "object"})},
                                         **_errors(401, 404, 503)}}},
            "/sessions/{id}/app-message": {"post": {
                "summary": "Send an app message through the bot", "parameters": [SESSION_ID],
                "requestBody": {"required": True, **_json({"$ref": ref("AppMessageBody")})},
                "responses": {"200": {"description": "sent", **_json({"type": "object", "properties": {
                    "sent": {"type": "boolean"}}})}, **_errors(400, 401, 404, 409, 413, 502, 503)}}},
            "/sessions/{id}/logs": {"get": {
                "summary": "The session's log: every line its worker and bot logged, as NDJSON (structlog JSON "
                           "objects with session_id, in order; a marker line where the oldest were dropped)",
                "parameters": [SESSION_ID,
                               {"name": "tail", "in": "query", "required": False,
                                "schema": {"type": "integer", "minimum": 1, "maximum": 1000000},
                                "description": "only the last N lines"},
                               {"name": "follow", "in": "query", "required": False,
                                "schema": {"type": "string", "enum": ["1", "0", "true", "false"]},
                                "description": "1: stream new lines as they are logged; the reply ends when the "
                                               "session ends"}],
                "responses": {"200": {"description": "the lines, one JSON object each",
                                      "content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
                              **_errors(400, 401, 404, 503)}}},
            "/sessions/{id}/stream": {"get": {
                "summary": "WebSocket for an external bot engine (see the README for the wire format)",
                "parameters": [SESSION_ID, {"name": "token", "in": "query", "required": True,
                                            "schema": {"type": "string"}, "description": "the session's stream_token"}],
                "security": [],
                "responses": {"101": {"description": "switching to WebSocket"}, **_errors(401, 404, 409, 503)}}},
            "/sessions/{id}/api/offer": {
                "post": {"summary": "A WebRTC session's browser: its SDP offer, answered by the worker's peer (the "
                                    "first is the join; later ones name pc_id and renegotiate). Open: the session id "
                                    "is the capability", "parameters": [SESSION_ID], "security": [],
                         "requestBody": {"required": True, **_json({"type": "object", "required": ["sdp", "type"],
                                                                    "properties": {
                             "sdp": {"type": "string"}, "type": {"type": "string", "enum": ["offer"]},
                             "pc_id": {"type": ["string", "null"]}, "restart_pc": {"type": ["boolean", "null"]}}})},
                         "responses": {"200": {"description": "the answer", **_json({"type": "object", "properties": {
                             "sdp": {"type": "string"}, "type": {"type": "string"}, "pc_id": {"type": "string"}}})},
                             **_errors(400, 404, 409, 413, 502, 503)}},
                "patch": {"summary": "A WebRTC session's browser: trickled ICE candidates for its peer",
                          "parameters": [SESSION_ID], "security": [],
                          "requestBody": {"required": True, **_json({"type": "object",
                                                                     "required": ["pc_id", "candidates"], "properties": {
                              "pc_id": {"type": "string"}, "candidates": {"type": "array", "items": {
                                  "type": "object", "required": ["candidate", "sdp_mid", "sdp_mline_index"],
                                  "properties": {"candidate": {"type": "string"}, "sdp_mid": {"type": "string"},
                                                 "sdp_mline_index": {"type": "integer"}}}}}})},
                          "responses": {"200": {"description": "taken", **_json({"type": "object"})},
                                        **_errors(400, 404, 409, 413, 502, 503)}}},
            "/talk": {"get": {"summary": "callfleet's page to talk to a bot from a browser (offline; ?profile=NAME)",
                              "security": [], "responses": {"200": {"description": "the page", "content": {
                                  "text/html": {"schema": {"type": "string"}}}}}}},
            "/talk/{asset}": {"get": {"summary": "The talk page's script (talk.js)", "security": [],
                                      "parameters": [{"name": "asset", "in": "path", "required": True,
                                                      "schema": {"type": "string"}}],
                                      "responses": {"200": {"description": "the file", "content": {
                                          "text/javascript": {"schema": {"type": "string"}}}}, **_errors(404)}}},
            "/client": {"get": {"summary": "Pipecat's prebuilt SmallWebRTC page: redirects to /client/ (query kept)",
                                "security": [], "responses": {"302": {"description": "to /client/"}}}},
            "/client/": {"get": {"summary": "Pipecat's prebuilt SmallWebRTC page (?profile=NAME; it loads Daily's "
                                            "call-machine bundle from c.daily.co)", "security": [],
                                 "responses": {"200": {"description": "the page", "content": {
                                     "text/html": {"schema": {"type": "string"}}}}, **_errors(503)}}},
            "/client/{path}": {"get": {"summary": "A file of Pipecat's prebuilt page", "security": [],
                                       "parameters": [{"name": "path", "in": "path", "required": True,
                                                       "schema": {"type": "string"}}],
                                       "responses": {"200": {"description": "the file"}, **_errors(404, 503)}}},
            "/healthz": {"get": {"summary": "Liveness and readiness", "security": [],
                                 "responses": {"200": {"description": "ok", **_json({"type": "object"})},
                                               "503": {"description": "draining, or no worker can start",
                                                       **_json({"type": "object"})}}}},
            "/readyz": {"get": {"summary": "Readiness: taking sessions and able to start one", "security": [],
                                "responses": {"200": {"description": "ready", **_json({"type": "object"})},
                                              "503": {"description": "draining, full, the embedded sandbox is down, "
                                                                     "or (cluster) joining or fenced",
                                                      **_json({"type": "object"})}}}},
            "/livez": {"get": {"summary": "Liveness: the daemon's loop answers", "security": [],
                               "responses": {"200": {"description": "alive", **_json({"type": "object"})}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics (callfleet_*)", "security": [],
                                 "responses": {"200": {"description": "text exposition format",
                                                       "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": {"get": {"summary": "This document", "security": [],
                                      "responses": {"200": {"description": "OpenAPI 3.1", **_json({"type": "object"})}}}},
            "/dashboard": {"get": {"summary": "The operator's dashboard: one HTML page (its data comes from the "
                                              "routes below, with the bearer key when one is set)", "security": [],
                                   "responses": {"200": {"description": "the page",
                                                         "content": {"text/html": {"schema": {"type": "string"}}}}}}},
            "/dashboard/{asset}": {"get": {
                "summary": "A file the dashboard page loads (dashboard.js, dashboard.css)", "security": [],
                "parameters": [{"name": "asset", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the file", "content": {
                    "text/javascript": {"schema": {"type": "string"}}, "text/css": {"schema": {"type": "string"}}}},
                    **_errors(404)}}},
            "/workers": {"get": {
                "summary": "This node's worker processes, as ctl workers shows them",
                "responses": {"200": {"description": "workers", **_json({"type": "object", "properties": {
                    "node_id": {"type": "string", "description": "this node, as sessions name it"},
                    "data": {"type": "array", "items": {"type": "object", "properties": {
                        "id": {"type": "string"}, "pid": {"type": ["integer", "null"]}, "state": {"type": "string"},
                        "session_id": {"type": ["string", "null"]}, "pss_mb": {"type": ["number", "null"]},
                        "uptime_s": {"type": "number"}, "calls_done": {"type": "integer"}}}}}})},
                              **_errors(401)}}},
            "/daily/v1/{tail}": {method: _DAILY_PROXY for method in ("get", "post", "delete")},
        },
    }
