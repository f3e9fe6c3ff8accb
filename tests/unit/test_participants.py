"""Who is in a session's call as its bot sees it: humans only, each announced once, and
after a failover's rejoin the rejoin's participant list is the truth."""

from __future__ import annotations

from typing import Any

from supervisor.sessions.participants import Participants


def person(pid: str, name: str = "", *, local: bool = False) -> dict[str, Any]:
    return {"id": pid, "info": {"userName": name, "isLocal": local}}


def test_the_bots_own_participant_is_never_a_human() -> None:
    people = Participants()
    people.bot_joined("bot-1")
    assert people.joined(person("bot-1", "bot")) is None
    assert people.joined(person("someone-local", local=True)) is None  # the SDK's own "local" entry
    assert people.humans == {} and not people.had_human
    assert people.bot_id == "bot-1"


def test_a_former_bot_id_is_never_a_human_after_the_bot_rejoins_with_a_new_id() -> None:
    people = Participants()
    people.bot_joined("bot-1")
    people.bot_joined("bot-2")  # a failover: the killed worker's participant may linger in the room
    assert people.bot_id == "bot-2"
    assert people.joined(person("bot-1", "bot")) is None
    assert people.joined(person("bot-2", "bot")) is None
    assert people.humans == {}


def test_a_former_bot_id_never_counts_as_a_human_however_many_rejoins_later() -> None:
    people = Participants()
    for bot_id in ("bot-1", "bot-2", "bot-3"):
        people.bot_joined(bot_id)
    assert people.joined(person("bot-1")) is None and people.joined(person("bot-2")) is None
    assert people.humans == {}


def test_a_human_is_announced_once_however_often_the_call_reports_them() -> None:
    people = Participants()
    people.bot_joined("bot-1")
    alice = people.joined(person("h1", "alice"))
    assert alice is not None and (alice.id, alice.name) == ("h1", "alice")
    assert people.joined(person("h1", "alice")) is None  # the join event after the join's list
    assert list(people.humans) == ["h1"] and people.had_human


def test_a_participant_without_an_id_is_ignored() -> None:
    people = Participants()
    assert people.joined({"info": {"userName": "ghost"}}) is None
    assert people.humans == {}


def test_a_human_who_left_is_reported_gone_once_and_announced_again_on_return() -> None:
    people = Participants()
    people.bot_joined("bot-1")
    people.joined(person("h1", "alice"))
    gone = people.left(person("h1", "alice"))
    assert gone is not None and gone.id == "h1"
    assert people.left(person("h1", "alice")) is None
    assert people.humans == {} and people.had_human
    assert people.joined(person("h1", "alice")) is not None  # a new arrival, announced again


def test_the_bot_or_an_unknown_participant_leaving_is_not_a_human_leaving() -> None:
    people = Participants()
    people.bot_joined("bot-1")
    people.joined(person("h1"))
    assert people.left(person("bot-1")) is None
    assert people.left(person("stranger")) is None
    assert people.left({}) is None
    assert list(people.humans) == ["h1"]


def test_reconcile_reports_who_left_and_who_arrived_during_the_gap() -> None:
    people = Participants()
    people.bot_joined("bot-1")
    people.joined(person("h1", "alice"))
    people.joined(person("h2", "bob"))
    people.bot_joined("bot-2")
    present = {"local": person("bot-2", "bot", local=True), "bot-1": person("bot-1", "bot"),
               "h2": person("h2", "bob"), "h3": person("h3", "carol")}
    arrived, gone = people.reconcile(present)
    assert [h.id for h in arrived] == ["h3"]  # bob was announced before; the old bot is no human
    assert [h.id for h in gone] == ["h1"]
    assert set(people.humans) == {"h2", "h3"}


def test_reconcile_with_only_bots_left_reports_every_human_gone() -> None:
    people = Participants()
    people.bot_joined("bot-1")
    people.joined(person("h1"))
    people.bot_joined("bot-2")
    arrived, gone = people.reconcile({"local": person("bot-2", local=True), "bot-1": person("bot-1")})
    assert arrived == [] and [h.id for h in gone] == ["h1"]
    assert people.humans == {}


def test_views_list_the_humans_only() -> None:
    people = Participants()
    people.bot_joined("bot-1")
    people.joined(person("bot-1", "bot"))
    people.joined(person("h1", "alice"))
    assert people.views() == [{"id": "h1", "name": "alice", "is_bot": False}]
