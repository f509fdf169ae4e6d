"""The simulator: plays the SACCO core banking system and the mobile-money provider."""
