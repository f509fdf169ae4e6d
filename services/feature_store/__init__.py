"""Streaming ingestion of mobile-money and repayment events into Feast (online and offline)."""
