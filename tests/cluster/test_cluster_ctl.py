"""``callfleet ctl`` on a node of a cluster: real supervisors sharing one real Redis and
one sandbox. ``ctl sessions`` on any node lists what ``GET /sessions`` on that node lists,
the other nodes' sessions included."""

from __future__ import annotations

import json
from typing import Any

from tests.cluster.conftest import NodesFactory
from tests.supervisor_harness import SupervisorProcess
from tests.waiting import wait_until


async def _listed_by_http(node: SupervisorProcess) -> list[str]:
    status, body, _ = await node.http("GET", "/sessions")
    assert status == 200, body
    return [view["session_id"] for view in body["data"]]


def _listed_by_ctl(node: SupervisorProcess, *args: str) -> Any:
    shown = node.ctl("--json", "sessions", *args)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


async def test_ctl_sessions_on_a_node_lists_the_clusters_sessions_as_get_sessions_does(
        make_nodes: NodesFactory) -> None:
    n1, n2 = await make_nodes("n1", "n2")
    bot = await n1.start_bot("echo")
    sid = bot["session_id"]
    await n1.wait_session(sid, lambda d: d["state"] == "joined")
    over_http = await wait_until(lambda: _listed_by_http(n2), 15, "n1's session in n2's GET /sessions",
                                 until=lambda ids: sid in ids)
    by_ctl = _listed_by_ctl(n2)
    assert [view["session_id"] for view in by_ctl] == over_http
    assert [view["node_id"] for view in by_ctl if view["session_id"] == sid] == ["n1"]
    table = n2.ctl("sessions").stdout
    assert sid in table and "(none)" not in table, table
    # ?state= and --state filter the other nodes' sessions the same way.
    assert [v["session_id"] for v in _listed_by_ctl(n2, "--state", "joined")] == [sid]
    assert _listed_by_ctl(n2, "--state", "ended") == []
