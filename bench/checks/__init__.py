"""Checks of the harness itself: the drift gate, seed spread, smoke runs, the method contract, reference sets."""
