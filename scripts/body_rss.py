#!/usr/bin/env python3
"""Peak server memory for the worst request bodies.

Starts the given kiemtra-server binary in a fresh temporary folder, enrolls
one inspector, runs one scenario against it and prints the server's peak
resident memory (VmHWM from /proc/PID/status):

  slow     32 connections at once, each sending a 63 MiB sync body in 1 MiB
           pieces spread over about 20 seconds
  ranges   one 63 MiB sync body made of signature ranges (4,096 ranges of
           an empty actor per signature: 40 bytes decoded for 3 sent)

  python3 scripts/body_rss.py target/release/kiemtra-server slow
"""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

MIB = 1 << 20
MEDIA = "application/x-kiemtra-sync"


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n == 0:
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def request_head(visits):
    return b"KTSQ" + bytes([5]) + varint(0) + (0).to_bytes(8, "little") + varint(0) + varint(visits)


def ranges_body(total):
    """Visits of 4,096 signatures of 4,096 (1, 1) ranges of an empty actor."""
    signature = b"\x00" + varint(4096) + b"\x00\x01\x01" * 4096 + b"\x40" + b"\x44" * 64
    per_visit = 4096
    count = (total - 64) // len(signature)
    visits = []
    i = 0
    while count > 0:
        n = min(per_visit, count)
        vid = f"v-{i}".encode()
        visits.append(bytes([len(vid)]) + vid + b"\x00\x00\x00" + varint(n) + signature * n)
        count -= n
        i += 1
    return request_head(len(visits)) + b"".join(visits)


def hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def start(binary, data):
    proc = subprocess.Popen(
        [binary, "--listen", "127.0.0.1:0", "--data", data],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "RUST_LOG": "warn"},
    )
    line = proc.stdout.readline().decode()
    return proc, int(line.strip().rsplit(" ", 1)[1])


def enroll(binary, data, port):
    code = subprocess.run(
        [binary, "enroll-code", "--user", "insp-a", "--team", "team-1", "--role",
         "inspector", "--count", "1", "--data", data],
        capture_output=True, check=True, env={**os.environ, "RUST_LOG": "warn"},
    ).stdout.decode().split()[0]
    body = json.dumps({"code": code, "device_name": "load", "public_key": secrets.token_hex(32)})
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/enroll", data=body.encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    return json.load(urllib.request.urlopen(req))["token"]


def post(port, token, total, pieces, pause, results, body=None):
    try:
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall((f"POST /v1/sync HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                   f"Content-Type: {MEDIA}\r\nContent-Length: {total}\r\n\r\n").encode())
        if body is not None:
            s.sendall(body)
        else:
            piece = b"\x00" * (total // pieces)
            sent = 0
            while sent < total:
                n = min(len(piece), total - sent)
                s.sendall(piece[:n])
                sent += n
                time.sleep(pause)
        s.settimeout(300)
        answer = s.recv(4096).decode(errors="replace").split("\r\n", 1)[0]
        results.append(answer)
    except OSError as e:
        results.append(f"error: {e}")


def main():
    binary, scenario = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp()
    data = os.path.join(work, "server")
    proc, port = start(binary, data)
    try:
        token = enroll(binary, data, port)
        idle = hwm_kib(proc.pid)
        results = []
        started = time.time()
        if scenario == "slow":
            threads = [threading.Thread(target=post, args=(port, token, 63 * MIB, 63, 0.3, results))
                       for _ in range(32)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        elif scenario == "ranges":
            body = ranges_body(63 * MIB)
            post(port, token, len(body), 1, 0, results, body)
        else:
            sys.exit(f"unknown scenario {scenario}")
        elapsed = time.time() - started
        summary = {}
        for r in results:
            summary[r] = summary.get(r, 0) + 1
        print(f"{scenario}: peak RSS {hwm_kib(proc.pid) / 1024:.0f} MiB "
              f"(idle {idle / 1024:.0f} MiB), {elapsed:.1f} s, answers {summary}")
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
