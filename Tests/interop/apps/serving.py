"""Serves a WSGI app on 127.0.0.1 for a set number of requests, then returns.

The interop servers use this instead of `app.run()` so that they pick a free port themselves (printed
as `LISTENING <port>` on stdout for the test to read), stop by themselves, and leave through normal
interpreter exit, which is when the OpenTelemetry SDK's batch span processor exports what it holds.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from werkzeug.serving import make_server


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1, help="how many requests to serve before exiting")
    parser.add_argument("--deadline", type=float, default=60.0, help="seconds after which to exit regardless")
    return parser.parse_args()


def serve(app, requests_to_serve: int, deadline_s: float) -> None:
    # SIGTERM from the test harness: leave through SystemExit so that exit handlers still flush spans.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    handled = 0
    wsgi_app = app.wsgi_app

    def counting_app(environ, start_response):
        nonlocal handled
        try:
            return wsgi_app(environ, start_response)
        finally:
            handled += 1

    app.wsgi_app = counting_app
    server = make_server("127.0.0.1", 0, app, threaded=False)
    server.timeout = 0.2  # handle_request() returns after this long without a request
    print(f"LISTENING {server.server_port}", flush=True)
    deadline = time.monotonic() + deadline_s
    try:
        while handled < requests_to_serve and time.monotonic() < deadline:
            server.handle_request()
    finally:
        server.server_close()
    if handled < requests_to_serve:
        sys.exit(f"served {handled} of {requests_to_serve} requests before the {deadline_s} s deadline")
