#!/usr/bin/env python3
"""Measures what one hostile client costs a baton-kv server (issue 13).

Starts BINARY (one reactor thread), sends one "*N" command of N tiny
arguments ("$1\\r\\na\\r\\n", ~7 bytes each) in 1,400-byte pieces, each sent
on its own with a short pause so that the server reads them one by one, and
reports the server's CPU time (utime + stime from /proc/PID/stat) spent on
it, and the worst PING round trip seen meanwhile by a second client on the
same (only) shard. Not run by ctest: a manual measurement for docs/kv.md.

  python3 tests/kv/hostile_multibulk.py BINARY N [PAUSE_SECONDS]
  python3 tests/kv/hostile_multibulk.py build/apps/kv/baton-kv 1000000 0.0005
"""
import os
import socket
import subprocess
import sys
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def connect(port):
    for _ in range(200):
        try:
            s = socket.create_connection(("127.0.0.1", port))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return s
        except ConnectionRefusedError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def main():
    binary, n = sys.argv[1], int(sys.argv[2])
    pause = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0001
    piece = 1400
    port = free_port()
    server = subprocess.Popen(
        [binary, f"--listen=127.0.0.1:{port}", "--threads=1"],
        stderr=subprocess.DEVNULL)
    try:
        hostile = connect(port)
        pinger = connect(port)
        wire = (b"*%d\r\n" % n) + b"$1\r\na\r\n" * n
        worst = [0.0]
        done = threading.Event()

        def ping():
            while not done.is_set():
                t = time.monotonic()
                pinger.sendall(b"PING\r\n")
                assert pinger.recv(64) == b"+PONG\r\n"
                worst[0] = max(worst[0], time.monotonic() - t)
                time.sleep(0.005)

        thread = threading.Thread(target=ping)
        thread.start()
        before = cpu_seconds(server.pid)
        start = time.monotonic()
        for i in range(0, len(wire), piece):
            hostile.sendall(wire[i:i + piece])
            time.sleep(pause)
        reply = hostile.recv(4096)  # "-ERR unknown command 'a'..."
        elapsed = time.monotonic() - start
        cpu = cpu_seconds(server.pid) - before
        done.set()
        thread.join()
        print(f"{binary}: {n} args, {len(wire)} bytes in {piece}-byte pieces"
              f" ({pause * 1e6:.0f} us apart):"
              f" server CPU {cpu:.2f} s, wall {elapsed:.2f} s,"
              f" worst PING {worst[0] * 1000:.1f} ms, reply {reply[:40]!r}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
