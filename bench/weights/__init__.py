"""Weight files: sidecars of training options, the committed reference sets, released checkpoints."""
