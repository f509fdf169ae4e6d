"""Members' rights tool: opens every store that holds a member's data (see wiring.py)."""
