"""Model training: synthetic SACCO world, Feast training sets, GBM + LSTM ensemble, bundles.

Built with issue 3; this package writes model bundles and never serves them.
"""
