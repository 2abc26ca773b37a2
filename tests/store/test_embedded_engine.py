"""The embedded Redis engine: one started after another in the same data folder (each
`chargedesk` command run in one process, the tests) is not touched by its predecessor,
and nothing of a stopped or killed engine comes back in the next."""

from __future__ import annotations

from pathlib import Path

import psutil
import redis

from bot.store.redis import _answers, _embedded_url


def test_a_stopped_engines_finalizer_leaves_the_next_engine_in_that_folder_alone(tmp_path: Path):
    first_url, first = _embedded_url(tmp_path)
    assert first is not None
    first.stop()
    second_url, second = _embedded_url(tmp_path)
    assert second is not None and second_url != first_url
    try:
        # What the garbage collector does with the first engine's server, at any moment: it
        # used to read the folder's one pid file, find the second engine and kill it.
        first.server.__del__()  # type: ignore[attr-defined]
        assert _answers(second_url)
    finally:
        second.stop()


def test_a_lock_held_when_the_engine_was_killed_is_gone_in_the_next_engine(tmp_path: Path):
    url, engine = _embedded_url(tmp_path)
    assert engine is not None
    client = redis.Redis.from_url(url)
    client.set("chargedesk:lock:sync:ledger", "token", px=600_000)
    pid = client.info("server")["process_id"]
    psutil.Process(pid).terminate()  # SIGTERM: Valkey saves a snapshot on it when told to
    psutil.Process(pid).wait(timeout=10)
    engine.stop()
    again_url, again = _embedded_url(tmp_path)
    assert again is not None
    try:
        assert redis.Redis.from_url(again_url).get("chargedesk:lock:sync:ledger") is None
    finally:
        again.stop()
    assert not list(tmp_path.glob("valkey/**/*.db"))
