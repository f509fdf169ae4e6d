"""Producers of the data contract's tables: files a lender exports, Home Credit, the world."""
