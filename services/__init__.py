"""Alama's deployable services and the shared library they all build on."""
