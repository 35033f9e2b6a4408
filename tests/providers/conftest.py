"""Fixtures of the connector tests (defined in :mod:`tests.providers.helpers`)."""

from .helpers import rig, simulator, tcp_rig, tcp_simulator

__all__ = ["rig", "simulator", "tcp_rig", "tcp_simulator"]
