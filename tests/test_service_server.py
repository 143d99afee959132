"""The multi-worker listening socket: connections accepted on it get TCP_NODELAY from asyncio."""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from toolkit.service.server import listening_socket


def _nodelay_of_accepted(listening: socket.socket) -> int:
    """TCP_NODELAY of a connection that asyncio accepted on `listening` (a real loopback connection)."""

    async def main() -> int:
        accepted = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport):
                sock = transport.get_extra_info("socket")
                accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=listening)
        port = listening.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            return await asyncio.wait_for(accepted, 10)
        finally:
            writer.close()
            server.close()
            await server.wait_closed()

    return asyncio.run(main())


def test_worker_connections_get_tcp_nodelay():
    # uvicorn 0.54's own config.bind_socket() gives 0 here (checked when this was written): the reason for
    # listening_socket; not asserted, since a later uvicorn may fix it
    assert _nodelay_of_accepted(listening_socket(uvicorn.Config(app=None, host="127.0.0.1", port=0))) != 0


def test_metric_labels_come_from_the_apps_routes_and_stay_bounded():
    from toolkit.service.middleware import EndpointLabels

    label = EndpointLabels(["/v1/manifest", "/v1/artifacts/{target}", "/healthz"])
    assert label("/v1/manifest") == "/v1/manifest"
    assert label("/v1/artifacts/tflite") == label("/v1/artifacts/coreml") == "/v1/artifacts/{target}"
    assert label("/v1/artifacts/a/b") == "other" and label("/v1/unknown") == "other" and label("/v1/manifest/") == "other"
