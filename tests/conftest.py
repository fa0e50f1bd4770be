"""Shared pytest setup: the adb fixtures (private adb server, emulated phones) for every test module."""

pytest_plugins = ["tests.adb_fixtures"]
