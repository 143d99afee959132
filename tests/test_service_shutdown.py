"""Stopping the service loses nothing: SIGTERM under load answers every accepted request, on new and on keep-alive
connections; a killed worker is replaced."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import httpx
from service_fixtures import CACHE, KEY, free_port, start_cli_serve

from toolkit.training.runs import load_run


async def one_request(port: int, request: bytes) -> str:
    """'answered' (a complete HTTP answer), 'refused' (closed or refused before any answer byte), or 'lost'
    (part of an answer, or none within 20 s on an open connection)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return "refused"
    received = b""
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
        received = head
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        received += await asyncio.wait_for(reader.readexactly(length), 20)
        return "answered"
    except (asyncio.IncompleteReadError, ConnectionError) as err:
        partial = received + getattr(err, "partial", b"")
        return "lost" if partial else "refused"
    except asyncio.TimeoutError:
        return "lost"
    finally:
        writer.close()


async def fresh_connection_client(port: int, request: bytes, counts: dict[str, int],
                                  signalled: asyncio.Event) -> None:
    """One request per connection (the request says `Connection: close`), until the server refuses one."""
    while True:
        outcome = await one_request(port, request)
        counts[outcome] += 1
        if signalled.is_set() and outcome == "refused":
            return  # the server has stopped accepting


async def keep_alive_client(port: int, request: bytes, counts: dict[str, int], signalled: asyncio.Event) -> None:
    """Requests back to back on one keep-alive connection; after an answer with `Connection: close` (the server is
    stopping) a new connection, until one is refused. A request written on an open connection that gets no
    answer is 'lost'."""
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            counts["refused"] += 1
            if signalled.is_set():
                return
            continue
        try:
            while True:
                writer.write(request)
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                await asyncio.wait_for(reader.readexactly(length), 20)
                counts["answered"] += 1
                if b"connection: close" in head.lower():
                    counts["closed_by_answer"] += 1
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError):
            counts["lost"] += 1
        finally:
            writer.close()


def sigterm_under_load(svc_run, svc_export, svc_keys, client, keep_alive: bool) -> dict[str, int]:
    """`cli.py serve` loaded by 16 `client`s posting a test device's body; SIGTERM after 2 s; the clients' counts
    once every one of them was refused, and the server exited cleanly."""
    run = load_run(svc_run, CACHE)
    body = json.dumps(run.task.example_request(int(run.task.devices("test")[0]))).encode()
    close = "" if keep_alive else "Connection: close\r\n"
    request = (f"POST /v1/generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: "
               f"application/json\r\nContent-Length: {len(body)}\r\n{close}\r\n").encode() + body
    port = free_port()
    process, _ = start_cli_serve(svc_run, svc_export, svc_keys, port, "--workers", "1")
    counts = {"answered": 0, "closed_by_answer": 0, "refused": 0, "lost": 0}

    async def load() -> None:
        signalled = asyncio.Event()

        async def stopper() -> None:
            await asyncio.sleep(2.0)
            process.send_signal(signal.SIGTERM)
            signalled.set()

        await asyncio.wait_for(asyncio.gather(stopper(), *(client(port, request, counts, signalled)
                                                           for _ in range(16))), 60)

    try:
        asyncio.run(load())
        # uvicorn re-raises the signal once it has shut down gracefully, so the exit status says "SIGTERM"
        assert process.wait(30) in (0, -signal.SIGTERM), process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
    print(counts)
    return counts


def test_sigterm_under_load_answers_every_accepted_request_and_exits_cleanly(svc_run, svc_export, svc_keys):
    counts = sigterm_under_load(svc_run, svc_export, svc_keys, fresh_connection_client, keep_alive=False)
    assert counts["lost"] == 0, counts
    assert counts["answered"] > 50 and counts["refused"] >= 1, counts


def test_sigterm_answers_the_requests_already_sent_on_keep_alive_connections(svc_run, svc_export, svc_keys):
    counts = sigterm_under_load(svc_run, svc_export, svc_keys, keep_alive_client, keep_alive=True)
    assert counts["lost"] == 0, counts
    assert counts["closed_by_answer"] == 16 and counts["answered"] > 50, counts  # every connection ended answered


def worker_pids(parent: int) -> set[int]:
    """The server processes a `--workers N` parent started (its spawned Python children)."""
    children = set()
    for task in Path(f"/proc/{parent}/task").iterdir():
        children |= {int(p) for p in (task / "children").read_text().split()}
    return {pid for pid in children if b"multiprocessing" in Path(f"/proc/{pid}/cmdline").read_bytes()
            and b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()}


def test_a_killed_worker_is_replaced_and_the_others_keep_serving(svc_run, svc_export, svc_keys):
    port = free_port()
    process, url = start_cli_serve(svc_run, svc_export, svc_keys, port, "--workers", "2")
    try:
        workers = worker_pids(process.pid)
        assert len(workers) == 2, workers
        victim = sorted(workers)[0]
        os.kill(victim, signal.SIGKILL)
        answers = [httpx.get(f"{url}/v1/manifest", headers={"Authorization": f"Bearer {KEY}"}, timeout=10).status_code
                   for _ in range(20)]
        assert answers == [200] * 20
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            now = worker_pids(process.pid)
            if len(now) == 2 and victim not in now:
                break
            time.sleep(0.5)
        assert len(now) == 2 and victim not in now, now
        assert process.poll() is None
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
