"""A call client's settings: inputs, publishing, subscriptions, its name, and what an owner
may change of the others."""

from __future__ import annotations

from typing import Any

from sandbox.connection import RequestError
from sandbox.sdk.call_core import CallState
from sandbox.sdk.call_media import CallMedia


class CallSettings(CallMedia):
    """The ``update_*`` and ``set_*`` methods of a ``CallClient``."""

    def update_inputs(self, input_settings: Any, completion: Any = None) -> None:
        """Merge ``input_settings``; the room hears of a microphone switched on or off."""
        self._run(self._update_inputs(dict(input_settings or {}), completion))

    async def _update_inputs(self, input_settings: dict[str, Any], completion: Any) -> None:
        before = self._inputs["microphone"].get("isEnabled")
        self._apply_inputs(input_settings)
        after = self._inputs["microphone"].get("isEnabled")
        if self._conn is not None and self._state is CallState.JOINED and before != after:
            try:
                await self._conn.request("update_mic", enabled=bool(after))
            except RequestError as exc:
                self._complete(completion, str(exc))
                return
        self._emit("on_inputs_updated", self.inputs())
        self._complete(completion, None)

    def update_publishing(self, publishing_settings: Any, completion: Any = None) -> None:
        self._publishing.update(publishing_settings or {})
        self._sdk.call(self._settings_done, "on_publishing_updated", self.publishing(), completion)

    def update_subscriptions(self, participant_settings: Any = None, profile_settings: Any = None, completion: Any = None) -> None:
        self._subscriptions.update(participant_settings or {})
        self._profiles.update(profile_settings or {})
        self._sdk.call(self._settings_done, "on_subscriptions_updated", self.subscriptions(), completion)

    def update_subscription_profiles(self, profile_settings: Any, completion: Any = None) -> None:
        for name, profile in (profile_settings or {}).items():
            self._profiles[name] = {**self._profiles.get(name, {}), **profile}
        self._sdk.call(self._settings_done, "on_subscription_profiles_updated", self.subscription_profiles(), completion)

    def _settings_done(self, callback: str, value: Any, completion: Any) -> None:
        self._emit(callback, value)
        self._complete(completion, None)

    def update_permissions(self, permissions: Any, completion: Any = None) -> None:
        """Accepted from a meeting owner; anyone else's completion gets daily's refusal."""
        if not self._local.get("info", {}).get("isOwner"):
            self._fail(completion, "only meeting owners can update permissions")
            return
        self._sdk.call(self._complete, completion, None)

    def update_remote_participants(self, remote_participants: Any, completion: Any = None) -> None:
        self._run(self._request("update_remote_participants", completion, remote_participants=remote_participants))

    def eject_remote_participants(self, ids: Any, completion: Any = None) -> None:
        self._run(self._request("eject", completion, ids=list(ids)))

    def set_user_name(self, user_name: str) -> None:
        self._local.setdefault("info", {})["userName"] = user_name
        if self._state is CallState.JOINED:
            self._run(self._request("set_user_name", None, user_name=user_name))

    def set_ice_config(self, ice_config: Any = None, completion: Any = None) -> None:
        self._sdk.call(self._complete, completion, None)

    def set_proxy_url(self, proxy_url: Any = None, completion: Any = None) -> None:
        self._sdk.call(self._complete, completion, None)
