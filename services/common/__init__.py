"""Shared internal library: what every Alama service needs and no single service owns."""
