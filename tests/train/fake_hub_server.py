"""Moved to tests/standins/hub_server.py; this shim keeps `from fake_hub_server import FakeHub` working."""

from standins.hub_server import HubStandIn as FakeHub  # noqa: F401
