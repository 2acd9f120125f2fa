"""Parse ``HOST:PORT`` listen addresses, one rule for every command and config file."""

from __future__ import annotations

import argparse

__all__ = ["listen_address", "split_host_port"]


def split_host_port(text: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:9099`` for IPv6); ``ValueError`` names the bad text."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:9099)")
    return host.strip("[]"), int(port)


def listen_address(text: str) -> tuple[str, int]:
    """Parse ``--listen`` for argparse, which shows the error with the option's name."""
    try:
        return split_host_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
