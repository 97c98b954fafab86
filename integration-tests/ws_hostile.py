"""Hostile WebSocket upstreams for ws-fanin-test.sh (and relays to the generator's healthy ones),
all on 127.0.0.1 from --base-port on:

  +0 garbage  (websockets)  every 100 ms: a binary frame that is not UTF-8, an empty frame, a
                            blank frame, JSON with a wrong-typed field, JSON without a message;
                            every second a line over --max-line-bytes. Nothing valid.
  +1 huge     (raw)         each connection gets one frame and nothing else: in turn a 5 MiB text
                            frame, or a text frame that is not UTF-8.
  +2 stall    (raw)         completes the handshake by hand, then never sends and never reads
                            (so never answers a ping).
  +3 flappy   (websockets)  5 valid events, then closes one second after it opened.
  +4 flood    (raw)         every second a burst of 64 frames of 64 KiB each (JSON without a
                            message: costly to read, rejected), more than the reader's share of
                            the queue holds: the rest must be dropped (overflow), never buffered.
  +5 +6 +7    relays        byte for byte to the generator (--generator host:port), so the three
                            generator streams can be cut at the end (SIGTERM) and the counts read
                            once settled.

The websockets servers answer pings on their own; the raw ones never read. On SIGTERM a summary
(JSON: per endpoint, connections and what was sent) goes to --summary and the process exits at
once, every connection dropped with it. Standard library plus `websockets` (PyPI).
"""
import argparse
import asyncio
import base64
import hashlib
import json
import os
import signal
import time

import websockets
from websockets.asyncio.server import serve

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
NAMES = ["garbage", "huge", "stall", "flappy", "flood", "relay-a", "relay-b", "relay-c"]
counts = {name: {"connections": 0, "frames": 0, "events": 0} for name in NAMES}


def ws_frame(payload, opcode=0x1):
    """A server's (unmasked) WebSocket frame, FIN set."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
    return head + payload


async def handshake(reader, writer):
    """Answers a client's upgrade request by hand (101 with the right Sec-WebSocket-Accept)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    key = b""
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    await writer.drain()


def event(service, message):
    return json.dumps({"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "level": "INFO", "service": service, "message": message})


async def garbage(ws, max_line):
    c = counts["garbage"]
    c["connections"] += 1
    tick = 0
    try:
        while True:
            frames = [b"\xff\xfe\xfd not utf-8 \x80", "", " \n \r\n ",
                      '{"message": "wrong type", "timestamp": [1]}', '{"level": "info"}']
            if tick % 10 == 0:
                frames.append("x" * (max_line + 1))
            for f in frames:
                await ws.send(f)
                c["frames"] += 1
            tick += 1
            await asyncio.sleep(0.1)
    except websockets.ConnectionClosed:
        pass


async def flappy(ws, service):
    c = counts["flappy"]
    c["connections"] += 1
    opened = time.monotonic()
    try:
        for i in range(5):
            await ws.send(event(service, f"flappy {c['connections']}.{i}"))
            c["frames"] += 1
            c["events"] += 1
            await asyncio.sleep(0.1)
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - opened)))
        await ws.close()
    except websockets.ConnectionClosed:
        pass


def raw_server(name, after_handshake):
    async def handle(reader, writer):
        counts[name]["connections"] += 1
        try:
            await handshake(reader, writer)
            await after_handshake(reader, writer, counts[name])
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
    return handle


async def huge(_reader, writer, c):
    if c["connections"] % 2:
        writer.write(ws_frame(b"x" * (5 << 20)))
    else:
        writer.write(ws_frame(b"caf\xe9 is latin-1, not UTF-8"))
    c["frames"] += 1
    await asyncio.wait_for(writer.drain(), 30)
    await asyncio.sleep(30)  # the client must be the one who closes


async def stall(_reader, _writer, _c):
    await asyncio.sleep(3600)


FLOOD_FRAME = ws_frame(b'{"a": [' + b"1," * (32 * 1024 - 8) + b'1]}')


async def flood(_reader, writer, c):
    burst = FLOOD_FRAME * 64
    while True:
        writer.write(burst)
        c["frames"] += 64
        await asyncio.wait_for(writer.drain(), 10)
        await asyncio.sleep(1)


def relay(name, host, port):
    async def handle(reader, writer):
        counts[name]["connections"] += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return

        async def pipe(r, w):
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except OSError:
                pass
            finally:
                w.close()
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
    return handle


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-port", type=int, required=True)
    ap.add_argument("--generator", required=True, help="host:port of the generator")
    ap.add_argument("--prefix", required=True, help="service names start with it")
    ap.add_argument("--max-line-bytes", type=int, default=256 * 1024)
    ap.add_argument("--summary", required=True)
    ap.add_argument("--ready", required=True)
    args = ap.parse_args()
    p = args.base_port
    gen_host, gen_port = args.generator.rsplit(":", 1)
    servers = [  # kept, so none is collected while it listens
        await serve(lambda ws: garbage(ws, args.max_line_bytes), "127.0.0.1", p, ping_interval=None),
        await asyncio.start_server(raw_server("huge", huge), "127.0.0.1", p + 1),
        await asyncio.start_server(raw_server("stall", stall), "127.0.0.1", p + 2),
        await serve(lambda ws: flappy(ws, f"{args.prefix}-flappy"), "127.0.0.1", p + 3, ping_interval=None),
        await asyncio.start_server(raw_server("flood", flood), "127.0.0.1", p + 4),
    ]
    for i, name in enumerate(["relay-a", "relay-b", "relay-c"]):
        servers.append(await asyncio.start_server(relay(name, gen_host, int(gen_port)), "127.0.0.1", p + 5 + i))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"{len(servers)} endpoints listening from port {p}", flush=True)
    with open(args.ready, "w") as f:
        f.write(str(os.getpid()))
    deadline = time.monotonic() + 3600  # never outlives the test by much
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            await asyncio.wait_for(stop.wait(), 1)
        except asyncio.TimeoutError:
            pass
    with open(args.summary, "w") as f:
        json.dump(counts, f)
    os._exit(0)  # every connection dropped at once, as a crashed upstream's would be


if __name__ == "__main__":
    asyncio.run(main())
