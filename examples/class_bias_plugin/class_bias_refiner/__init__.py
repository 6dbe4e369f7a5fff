"""Example magnet-bench plugin: ``class_bias`` (see :mod:`class_bias_refiner.method`)."""
