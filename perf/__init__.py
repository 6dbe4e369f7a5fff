"""``python -m perf`` (``make perf``): same-run speed comparisons, medians over repeats (issue 15).

A tool beside the harness (the frame ``bench/`` never imports a method; this package does, inside
the functions that time them). Every comparison alternates its variants in one process
(variant A, variant B, A, B, ...), after one untimed warm-up call of each (oneDNN builds its
kernels on the first call), and reports the median of ``--repeats`` timed calls of each, timed by
``bench.runtime.measure.timed``. Ratios are medians of the old variant over medians of the new one.
Sections (``--sections``):

- ``gf`` (:func:`perf.sections.guided_filter_section`): our per-channel guided filter (the CPU
  kernel and the convolution path it replaced) against the DGF authors' ``guided-filter-pytorch``
  ``GuidedFilter(r, 1e-2)`` on C channels at W x H (default 19 at 1024x512, r = 4), with the
  largest |difference| to the reference package and, on two channels, to a float64 evaluation;
  also the grey-guide GF method's OpenCV filter for scale.
- ``dgf``: DGF's whole filtering step at that size, CPU kernel against the convolution path.
- ``backbone`` (:func:`perf.sections.backbone_section`): one forward of the backbone (default
  HRNet-W18-Small-v2-OCR, BN statistics calibrated on random images so that folding changes the
  weights): ``reference`` (the forward as it was, ``bench.models.backbones.hrnet_ocr.reference_forward``),
  ``exact`` (the default, bitwise equal) and the opt-in inference copies (BN folded,
  channels-last, both); FLOPs of one forward and the achieved rate as a fraction of the fp32
  matmul peak timed in the same rounds.
- ``magnet`` (:mod:`perf.magnet_section`): MagNet and MagNet-Fast image calls (coarse pass +
  refinement) on one random image, reference against exact (and ``--magnet-copy``), with
  bitwise equality of the final probabilities, label pixels changed and the peak RSS of each
  variant in a fresh subprocess (``--no-memory`` skips those).

Weights are random: the times hold for trained weights of the same architecture, the label
differences are an indication only. The load average before and after is recorded. Results go to
``--out`` (default ``results/perf/perf.json``) with the machine fingerprint; sections not rerun are
carried over from the existing file (``--no-carry``); ``make readme`` renders the README's ``perf``
block from it (``bench.report.perf_render``). The process re-executes itself once with the tuned
allocator the harness gives its measured units (``bench.runtime.measure.child_env``).
"""

from perf.cli import main, parser, run
from perf.core import alternate, calibrated_backbone, count_flops, matmul_peak
from perf.sections import BACKBONE_VARIANTS, backbone_variants

__all__ = ["BACKBONE_VARIANTS", "alternate", "backbone_variants", "calibrated_backbone", "count_flops", "main",
           "matmul_peak", "parser", "run"]
