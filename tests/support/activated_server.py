#!/usr/bin/env python3
"""A socket-activated server for sv-lite's tests: takes its listener as fd 3, as systemd passes
it, and answers every connection with its pid. Refuses to run unless LISTEN_PID is its own pid
and LISTEN_FDS/LISTEN_FDNAMES describe one socket named `http`, as sd_listen_fds(3) checks."""
import os
import socket
import sys

if os.environ.get("LISTEN_PID") != str(os.getpid()):
    sys.exit(f"LISTEN_PID={os.environ.get('LISTEN_PID')!r}, but my pid is {os.getpid()}")
if os.environ.get("LISTEN_FDS") != "1" or os.environ.get("LISTEN_FDNAMES") != "http":
    sys.exit(f"LISTEN_FDS={os.environ.get('LISTEN_FDS')!r} LISTEN_FDNAMES={os.environ.get('LISTEN_FDNAMES')!r}")
listener = socket.socket(fileno=3)
print(f"serving on {listener.getsockname()}", flush=True)
while True:
    connection, _ = listener.accept()
    with connection:
        connection.sendall(f"{os.getpid()}\n".encode())
