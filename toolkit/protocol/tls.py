"""TLS contexts: the one a client verifies an https:// service with, and the check of a server's certificate files."""

from __future__ import annotations

import ssl

from toolkit.errors import ConfigError


def tls_context(ca_file: str = "") -> ssl.SSLContext:
    """A client TLS context that verifies the server against `ca_file` (a PEM file), else the system's CAs."""
    try:
        return ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"{ca_file}: not a readable PEM CA certificate ({err})") from err


def check_server_files(certfile: str, keyfile: str) -> None:
    """ConfigError naming the files unless they are a PEM certificate chain and its private key."""
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"{certfile}, {keyfile}: not a PEM certificate and its private key ({err})") from err
