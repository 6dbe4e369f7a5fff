"""Models every method shares: the segmentation backbones, the coarse pass, checkpoint loading and scanning."""
