"""A real HTTP server on loopback that plays hCaptcha's siteverify endpoint.

Answers by the `response` form field: 'good-*' -> success, 'slow' -> answers
after 3 s, 'garbage' -> not JSON, 'http500' -> status 500, anything else ->
success false. Each answer is written in one write (two small writes cost
~40 ms per call on loopback: Nagle + delayed ACK). Calls are recorded.
"""

from __future__ import annotations

import json
import socketserver
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler


@dataclass
class FakeHCaptcha:
    calls: list[dict[str, str]] = field(default_factory=list)
    server: socketserver.ThreadingTCPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        assert isinstance(host, str)  # an AF_INET server
        return f"http://{host}:{port}/siteverify"

    def start(self) -> FakeHCaptcha:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                fake.calls.append(form)
                status, body = fake.answer(form.get("response", ""))
                head = (
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode()
                self.wfile.write(head + body)

            def log_message(self, *args: object) -> None:
                pass

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128  # a burst of concurrent /addJob calls queues, not fails

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @staticmethod
    def answer(response: str) -> tuple[int, bytes]:
        if response == "slow":
            time.sleep(3)
        if response == "garbage":
            return 200, b"<html>not json</html>"
        if response == "http500":
            return 500, b'{"success": true}'
        success = response.startswith("good")
        return 200, json.dumps({"success": success, "hostname": "fake"}).encode()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
