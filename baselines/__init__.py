"""Baseline methods: registry key -> "module:Class". Nothing is imported here (lazy registry)."""

METHODS = {
    "downsample": "baselines.downsample:Downsample",
    "patching": "baselines.patching:Patching",
    "densecrf": "baselines.densecrf:DenseCRF",
    "guided_filter": "baselines.guided_filter:GuidedFilterGray",
    "dgf": "baselines.dgf:DeepGuidedFilter",
    "pointrend": "baselines.pointrend.method:PointRend",
    "segfix": "baselines.segfix.method:SegFix",
    "cascadepsp": "baselines.cascadepsp.method:CascadePSP",
    "glnet": "baselines.glnet.method:GLNetMethod",
    "segrefiner": "baselines.segrefiner.method:SegRefiner",
    "crm": "baselines.crm.method:CRM",
    "isdnet": "baselines.isdnet.method:ISDNetMethod",
}
