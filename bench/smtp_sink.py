"""An SMTP sink for benchmarks: accepts every message and throws it away (aiosmtpd).

Run in its own process so the sink's CPU is not charged to the sender being measured:
``python bench/smtp_sink.py PORT``.
"""
from __future__ import annotations

import signal
import sys
import threading

from aiosmtpd.controller import Controller


class Discard:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.count += 1
        return "250 OK"


def main() -> None:
    port = int(sys.argv[1])
    controller = Controller(Discard(), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
