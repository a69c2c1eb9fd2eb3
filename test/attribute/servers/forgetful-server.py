"""An HTTP server with the classic CLOSE-WAIT bug: it answers each request and
never closes the socket, not even after the client's FIN. Each connection it
accepted sits in CLOSE-WAIT (owned by this python3 process) until it exits.

    /usr/bin/python3 forgetful-server.py PORT

Listens on [::]:PORT, dual-stack (IPv4 clients appear as ::ffff:a.b.c.d).
Writes JSON lines to stdout: {"ts": epoch seconds (6 decimals), "event": ...}.
"""

import json
import os
import socket
import sys
import time


def log(**fields):
    print(json.dumps({"ts": round(time.time(), 6), **fields}), flush=True)


def main():
    port = int(sys.argv[1])
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.listen(64)
    log(event="listening", port=port, pid=os.getpid())
    held = []
    while True:
        c, addr = s.accept()
        held.append(c)  # the bug: kept forever, never closed
        request = c.recv(65536)
        body = b'{"ok":true}'
        c.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        log(event="served", peer=addr[0], clientPort=addr[1], requestLine=request.split(b"\r\n", 1)[0].decode("latin1"))


if __name__ == "__main__":
    main()
