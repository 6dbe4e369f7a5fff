"""ISDNet (Guo et al., CVPR 2022) as a method of the harness: our own implementation (see ``method``)."""
