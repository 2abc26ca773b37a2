"""The switches every emulator shares (chargedesk_emulators.traffic), on a two-route API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chargedesk_emulators.serve import running
from chargedesk_emulators.traffic import EmulatedAPI, Refused


class Counter(EmulatedAPI):
    """POST /items/{name} counts one more; it refuses callers without the key."""

    name = "Counter"

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/items/{name}", self._endpoint(), methods=["POST"])])

    def _endpoint(self) -> Callable[[Request], Awaitable[Response]]:
        def work(request: Request, body: bytes) -> tuple[int, bytes]:
            if request.headers.get("x-key") != "k":
                raise Refused((401, b"who are you"))
            name = request.path_params["name"]
            self.counts[name] = self.counts.get(name, 0) + 1
            return 200, str(self.counts[name]).encode()

        async def endpoint(request: Request) -> Response:
            return await self._exchange(
                request, work, lambda status: (status, b"failed"), lambda a: Response(a[1], a[0])
            )

        return endpoint


@pytest.fixture
def api() -> Iterator[Counter]:
    with running(Counter()) as served:
        yield served


def post(api: Counter, name: str, key: str = "k") -> httpx.Response:
    return httpx.post(f"{api.base_url}/items/{name}", headers={"x-key": key})


def test_a_failure_after_the_work_loses_the_answer_but_keeps_the_work(api: Counter) -> None:
    api.fail_next(1, 502, after=True)
    assert post(api, "a").status_code == 502
    assert api.counts == {"a": 1}
    assert [(e.status, e.response) for e in api.exchanges] == [(502, b"failed")]


def test_a_failure_instead_of_the_work_leaves_nothing_done(api: Counter) -> None:
    api.fail_next(1, 503)
    assert post(api, "a").status_code == 503
    assert api.counts == {}


def test_a_refused_request_keeps_its_refusal_and_uses_up_the_failure(api: Counter) -> None:
    api.fail_next(1, 500, after=True)
    refused = post(api, "a", key="forged")
    assert (refused.status_code, refused.content) == (401, b"who are you")
    assert post(api, "a").status_code == 200  # the failure went to the refused request


def test_switches_go_to_the_requests_they_match(api: Counter) -> None:
    api.fail_next(1, 500, method="GET")
    api.fail_next(1, 429, path_prefix="/items/b")
    assert post(api, "a").status_code == 200
    assert post(api, "b").status_code == 429
    assert post(api, "b").status_code == 200
    assert [e.path for e in api.requests_to("POST", "/items/b")] == ["/items/b", "/items/b"]


def test_a_hold_after_the_work_lets_the_work_take_effect_at_once(api: Counter) -> None:
    api.slow_next(1, 0.5, after=True)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{api.base_url}/items/a", headers={"x-key": "k"}, timeout=0.2)
    assert api.counts == {"a": 1}  # done, though the answer never arrived in time
