"""Integration fixtures: the tiny trained model (`tiny_bundle`) lives in tests/conftest.py."""
