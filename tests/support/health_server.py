#!/usr/bin/env python3
"""A small HTTP server for sv-lite's health-check and lifecycle tests.

usage: health_server.py PORT STATE_DIR

GET /health answers according to STATE_DIR/mode (read at every request):
  ok      -> 200 "ok"            (the default when the file is missing)
  other   -> 200 "not ok"
  500     -> 500 "broken"
  hang    -> accepts, never answers
Every request line is appended to STATE_DIR/requests.log.
POST /quitquitquit and POST /abortabortabort answer 200; when STATE_DIR/obey exists,
the server then exits (0 for quitquitquit, 3 for abortabortabort).
"""
import http.server
import os
import sys
import threading
import time

PORT = int(sys.argv[1])
STATE = sys.argv[2]


def record(line):
    with open(os.path.join(STATE, "requests.log"), "a") as log:
        log.write(f"{os.getpid()} {line}\n")


def mode():
    try:
        with open(os.path.join(STATE, "mode")) as f:
            return f.read().strip() or "ok"
    except FileNotFoundError:
        return "ok"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def do_GET(self):
        record(f"GET {self.path}")
        current = mode()
        if current == "hang":
            time.sleep(3600)
            return
        if current == "other":
            self.answer(200, "not ok")
        elif current == "500":
            self.answer(500, "broken")
        else:
            self.answer(200, "ok")

    def do_POST(self):
        record(f"POST {self.path}")
        self.answer(200, "bye")
        if os.path.exists(os.path.join(STATE, "obey")):
            code = 0 if self.path == "/quitquitquit" else 3
            threading.Thread(target=lambda: (time.sleep(0.05), os._exit(code)), daemon=True).start()


server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
server.daemon_threads = True
record("listening")
server.serve_forever()
