"""CRM (CVPR 2022), our own implementation: net, multi-resolution inference, training, the method."""
