"""Population stability of features and scores against the training reference; drift alerts."""
