#!/usr/bin/env python3
"""netprobe.py - tiny servers and probes for the firewall tests.

  netprobe.py serve READYFILE       TCP 8080 on :: (dual stack), UDP and TCP 53
                                    on 0.0.0.0; each answers "ok"; touches
                                    READYFILE once all are bound
  netprobe.py tcp HOST PORT         exit 0 if a TCP connection gets "ok"
  netprobe.py udp HOST PORT         exit 0 if a datagram gets "ok" back
A probe gives up after 1 s (a DROP shows as silence, not as a refusal).
"""
import socket
import sys
import threading

TIMEOUT = 1.0


def tcp_server(sock):
    while True:
        c, _ = sock.accept()
        try:
            c.sendall(b"ok\n")
        finally:
            c.close()


def udp_server(sock):
    while True:
        _, peer = sock.recvfrom(512)
        sock.sendto(b"ok\n", peer)


def serve(ready):
    t = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    t.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("::", 8080))
    t.listen(16)
    d = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    d.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    d.bind(("0.0.0.0", 53))
    d.listen(16)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("0.0.0.0", 53))
    threads = [threading.Thread(target=tcp_server, args=(t,), daemon=True),
               threading.Thread(target=tcp_server, args=(d,), daemon=True),
               threading.Thread(target=udp_server, args=(u,), daemon=True)]
    for th in threads:
        th.start()
    open(ready, "w").close()
    for th in threads:
        th.join()


def probe(proto, host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(fam, kind)
    s.settimeout(TIMEOUT)
    try:
        if proto == "tcp":
            s.connect((host, port))
            data = s.recv(16)
        else:
            s.sendto(b"ping", (host, port))
            data, _ = s.recvfrom(16)
        return 0 if data.startswith(b"ok") else 1
    except OSError:
        return 1
    finally:
        s.close()


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
        return 0
    if len(sys.argv) == 4 and sys.argv[1] in ("tcp", "udp"):
        return probe(sys.argv[1], sys.argv[2], int(sys.argv[3]))
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
