"""MagNet methods: registry key -> "module:Class". Nothing heavy is imported here (lazy registry)."""

METHODS = {
    "magnet": "magnet.method:MagNet",
    "magnet_fast": "magnet.method:MagNetFast",
    "magnet_fast_paper": "magnet.method:MagNetFastPaper",
}


def __getattr__(name: str):  # noqa: ANN202 - lazy access to magnet.RefinementModule
    if name == "RefinementModule":
        from magnet.refinement import RefinementModule

        return RefinementModule
    raise AttributeError(name)
