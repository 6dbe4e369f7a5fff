"""A method of known cost for the measurement test (registered via MAGNET_BENCH_METHODS).

Every ``refine`` sleeps 200 ms; the 1st, 3rd, ... call also writes 64 MiB (every page touched)
and frees it before returning, the 2nd, 4th, ... allocate nothing more than Downsample.
"""

import time

import numpy as np

from baselines.downsample import Downsample

SLEEP_S = 0.2
TOUCH_BYTES = 64 * 2**20


class CostlyDownsample(Downsample):
    name = "costly_downsample"
    display_name = "Costly Downsample"

    def refine(self, image, coarse):  # noqa: ANN001, ANN201
        calls = getattr(self, "calls", 0)
        self.calls = calls + 1
        if calls % 2 == 0:
            block = np.full(TOUCH_BYTES, 1, np.uint8)
            assert int(block[:: 4096].sum()) == TOUCH_BYTES // 4096
            del block
        time.sleep(SLEEP_S)
        return super().refine(image, coarse)
