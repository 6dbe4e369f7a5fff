"""The lowest layer: configuration, the method and dataset contract, data types, the registry, errors, statuses.

Imports nothing from the other layers (``make lint`` checks the order with import-linter). Heavy
dependencies stay out: only ``interface`` imports torch.
"""
