"""Serve from a service config file: `python -m toolkit.service --config service.json [--port 8000 --workers 2]`.

The entry the benchmark starts its servers with (any working directory; `cli.py serve` builds the same config
from its options). Exits 1 with the reason when the run or its export cannot be served.
"""

from __future__ import annotations

import argparse
import logging
import sys

from toolkit.errors import DuetError
from toolkit.service.config import ServiceConfig
from toolkit.service.server import ServerOptions, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolkit.service", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="service config JSON (toolkit.service.config.ServiceConfig)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument("--workers", type=int, default=1, help="server processes (each loads the run)")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument("--ssl-certfile", default="", help="TLS certificate chain (PEM): serve https://")
    parser.add_argument("--ssl-keyfile", default="", help="TLS private key (PEM) of --ssl-certfile")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        config = ServiceConfig.read(args.config)
        serve(config, ServerOptions(host=args.host, port=args.port, workers=args.workers, access_log=args.access_log,
                                    ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile,
                                    log_level="info" if args.verbose else "warning"))
    except (DuetError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
