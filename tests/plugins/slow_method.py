"""A deliberately slow method for the kill-and-resume test (registered via MAGNET_BENCH_METHODS)."""

import time

from baselines.downsample import Downsample


class SlowDownsample(Downsample):
    name = "slow_downsample"
    display_name = "Slow Downsample"

    def refine(self, image, coarse):  # noqa: ANN001, ANN201
        time.sleep(0.4)
        return super().refine(image, coarse)


class BrokenMethod(Downsample):
    name = "broken"
    display_name = "Broken"

    def refine(self, image, coarse):  # noqa: ANN001, ANN201
        raise RuntimeError("this method always fails")
