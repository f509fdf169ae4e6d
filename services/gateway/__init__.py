"""REST front door: auth, signed mobile-money webhooks, synchronous scoring over gRPC."""
