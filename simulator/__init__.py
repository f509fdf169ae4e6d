"""The simulator: plays the SACCO core banking system and the mobile-money provider from a loan
book (any source), and is the one owner of turning the data contract's tables into events.

A tool beside `bench/`, not a service: no chart, no image; `python -m simulator run`.
"""
