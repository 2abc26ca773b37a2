"""The business's endpoint that the ledger gateway forwards actions to, on 127.0.0.1:0.

It verifies the signature like a real integration would, remembers the
idempotency keys it has seen (answering a repeat with the first result), and
answers as configured.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bot.gateways.ledger.forward import SIGNATURE_HEADER, Forwarder, sign
from bot.gateways.ledger.gateway import LedgerGateway
from bot.gateways.registry import Gateways
from bot.services import Services


@dataclass
class ForwardEndpoint:
    secret: str
    answer: dict[str, Any] = field(default_factory=lambda: {"status": "succeeded"})
    status_code: int = 200
    received: list[dict[str, Any]] = field(default_factory=list)
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    bad_signatures: int = 0
    url: str = ""

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        signature = headers.get(SIGNATURE_HEADER, "")
        timestamp = (
            int(signature.split(",")[0].removeprefix("t=") or 0)
            if signature.startswith("t=")
            else 0
        )
        if signature != sign(self.secret, body, timestamp):
            self.bad_signatures += 1
            return 401, {"status": "failed", "code": "bad_signature"}
        payload = json.loads(body)
        self.received.append(payload)
        key = payload["idempotency_key"]
        if key in self.done:
            return 200, self.done[key]
        answer = (
            {**self.answer, "reference": f"biz_{len(self.done) + 1}"}
            if self.answer["status"] == "succeeded"
            else self.answer
        )
        if self.status_code == 200 and answer["status"] == "succeeded":
            self.done[key] = answer
        return self.status_code, answer


@contextmanager
def forward_endpoint(secret: str) -> Iterator[ForwardEndpoint]:
    endpoint = ForwardEndpoint(secret=secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status, answer = endpoint.handle(dict(self.headers), body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/actions"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()


@asynccontextmanager
async def forwarding_ledger(
    services: Services, secret: str = "forward-secret-123456"
) -> AsyncIterator[ForwardEndpoint]:
    """The ledger as the only gateway, forwarding every action to a signing endpoint."""
    with forward_endpoint(secret) as endpoint:
        ledger = LedgerGateway(
            services.db, forwarder=Forwarder(url=endpoint.url, secret=secret, timeout=5)
        )
        services.gateways = Gateways([ledger], timeout=5)
        try:
            yield endpoint
        finally:
            await ledger.close()
