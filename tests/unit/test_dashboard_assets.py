"""The dashboard's files as the supervisor loads them from its package."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request

from supervisor.http import dashboard
from supervisor.http.errors import ApiError


def test_only_the_page_s_kinds_of_file_are_served(tmp_path: Path) -> None:
    for name, text in {"index.html": "<p>", "dashboard.js": "1;", "dashboard.css": "p{}", "notes.txt": "x",
                       "dashboard.py": "x = 1"}.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "more.js").mkdir()  # a folder, whatever its name
    assert dashboard.load_assets(tmp_path) == {"index.html": (b"<p>", "text/html"),
                                               "dashboard.js": (b"1;", "text/javascript"),
                                               "dashboard.css": (b"p{}", "text/css")}


def test_a_missing_folder_loads_nothing_instead_of_stopping_the_supervisor(tmp_path: Path) -> None:
    assert dashboard.load_assets(tmp_path / "dashboard_static") == {}


@pytest.mark.parametrize(("handler", "path", "match"), [(dashboard.page, "/dashboard", {}),
                                                        (dashboard.asset, "/dashboard/dashboard.js",
                                                         {"asset": "dashboard.js"})])
async def test_without_its_files_the_page_answers_500_naming_what_is_missing(monkeypatch: pytest.MonkeyPatch,
                                                                             handler: object, path: str,
                                                                             match: dict[str, str]) -> None:
    monkeypatch.setattr(dashboard, "ASSETS", {})
    request = make_mocked_request("GET", path, match_info=match)
    with pytest.raises(ApiError) as raised:
        await handler(request)  # type: ignore[operator]
    assert raised.value.status_code == 500
    assert json.loads(raised.value.text or "") == {
        "error": "server-error",
        "info": "the dashboard's files were not installed with callfleet "
                "(supervisor/http/dashboard_static is missing from the package)"}


def test_the_shipped_folder_has_the_page_and_its_two_files() -> None:
    assert set(dashboard.ASSETS) == {"index.html", "dashboard.js", "dashboard.css"}
