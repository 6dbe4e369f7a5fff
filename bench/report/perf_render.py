"""The README's ``perf`` block, rendered from ``results/perf/perf.json`` (written by ``python -m perf``).

Reading the JSON needs nothing from the methods, so ``bench.cli.readme_blocks`` can render the block
without importing the tool that measures it.
"""

from __future__ import annotations

from typing import Any


def render(results: dict[str, Any]) -> str:
    """Markdown of the same-run ratios: guided filters, DGF, backbone variants, MagNet image calls."""
    lines = [_header(results), ""]
    for key, fn in (("guided_filter", _guided_filter), ("dgf", _dgf), ("backbone", _backbone), ("magnet", _magnet)):
        section = results.get(key)
        if section:
            carried = section.get("carried_over_from")
            if carried:
                lines += [f"(From an earlier run, `{carried['command']}`, git {str(carried.get('git_sha'))[:10]}.)", ""]
            lines += fn(section)
    return "\n".join(lines).rstrip() + "\n"


def _header(results: dict[str, Any]) -> str:
    prov = results.get("provenance", {})
    text = (f"Rendered from `{results.get('out', 'results/perf/perf.json')}` (`{results['command']}`): "
            f"{prov.get('cpu', '?')}, {prov.get('threads', '?')} threads, torch {prov.get('versions', {}).get('torch')}, "
            f"git {str(prov.get('git_sha'))[:10]}, fingerprint {results['fingerprint']}; load average "
            f"{_num(results.get('load_before'))} before and {_num(results.get('load_after'))} after (a shared machine: "
            f"times are noisy, ratios come from variants alternated in one process, medians of "
            f"{results['repeats']}; the 'fastest calls' ratio compares each variant's fastest call, the one least "
            f"slowed by other jobs).")
    peak = results.get("peak")
    if peak:
        text += (f" fp32 matmul peak ({peak['n']}x{peak['n']}): {peak['best_gflops']:.1f} GFLOP/s at the start and "
                 f"{peak.get('best_gflops_end', float('nan')):.1f} at the end.")
    return text


def _best(entry: dict[str, Any]) -> str:
    best = entry.get("best_speedup_vs_reference")
    return "?" if best is None else f"{best:.2f}x"


def _num(x: float | None) -> str:
    return "?" if x is None else f"{x:.2f}"


def _guided_filter(gf: dict[str, Any]) -> list[str]:
    t = gf["times_ms"]
    return [f"Guided filter, {gf['channels']} channels at {gf['size']}, r = {gf['radius']}, eps = {gf['eps']} "
            f"(median ms): ours {t['ours']['median']:.0f}, `guided-filter-pytorch` {t['reference']['median']:.0f} "
            f"(**{gf['speedup_vs_reference']:.1f}x**), our previous convolution path "
            f"{t['ours_conv_path']['median']:.0f} ({gf['speedup_vs_conv_path']:.1f}x); grey-guide OpenCV filter "
            f"{t['grey_guide_cv2']['median']:.0f}. Max |ours - reference| = {gf['max_abs_diff_vs_reference']:.1e}; "
            f"against float64: ours {gf['max_abs_err_float64']['ours']:.1e}, reference "
            f"{gf['max_abs_err_float64']['reference']:.1e}.", ""]


def _dgf(dgf: dict[str, Any]) -> list[str]:
    t = dgf["times_ms"]
    return [f"DGF's filtering step on a {dgf['size']} image ({dgf['classes']} classes, coarse {dgf['coarse']}, "
            f"random guide head), median ms: {t['conv_path']['median']:.0f} with the convolution path, "
            f"{t['cpu_kernel']['median']:.0f} with the CPU kernel ({dgf['speedup']:.1f}x); label pixels "
            f"changed: {dgf['label_pixels_changed']} of {dgf['pixels']}.", ""]


def _backbone(bb: dict[str, Any]) -> list[str]:
    f = bb["flops_per_image"]
    if "reference" not in bb["variants"]:  # a file from before the exact default (plain = reference)
        return [f"Backbone `{bb['backbone']}` at {bb['size']}: an older file without the exact variant.", ""]
    peaks = bb.get("peak_gflops_per_round", [])
    lines = [f"Backbone `{bb['backbone']}` forward at {bb['size']}, batch {bb['batch']}: "
             f"{f['flop_counter'] / 1e9:.1f} GFLOP per image (`torch.utils.flop_counter`; conv + linear layers "
             f"{f['conv_linear'] / 1e9:.1f}). `reference` is the forward as it was (today's main), `exact` the "
             f"default (bitwise equal). Each round times the fp32 matmul peak and then every variant "
             f"(peak per round: {', '.join(f'{p:.1f}' for p in peaks)} GFLOP/s); the fraction of peak is the "
             f"median over rounds of the variant's rate over that round's peak.", "",
             "| Variant | median s per forward | speed-up (medians) | speed-up (fastest calls) | GFLOP/s | "
             "of fp32 peak | bitwise equal | label pixels changed |", "|---|---:|---:|---:|---:|---:|---|---:|"]
    for k, v in bb["variants"].items():
        lines.append(f"| {k} | {bb['times_ms'][k]['median'] / 1e3:.2f} | {v['speedup_vs_reference']:.2f}x | "
                     f"{_best(v)} | "
                     f"{v['gflops']:.1f} | {100 * v['fraction_of_peak']:.0f} % | "
                     f"{'yes' if v['bitwise_equal'] else 'no'} | {v['label_pixels_changed']} of {v['pixels']} |")
    return [*lines, ""]


def _magnet(mg: dict[str, Any]) -> list[str]:
    if "variants" not in mg:
        return ["MagNet image calls: an older file without the exact variant.", ""]
    lines = [f"MagNet image call (coarse pass + refinement) on a {mg['image']} image, input {mg['input']}, "
             f"batch {mg['batch']}, random calibrated weights; `reference` = today's main forward:", "",
             "| Method | variant | median s | speed-up (medians) | speed-up (fastest calls) | probabilities bitwise "
             "equal | label pixels changed | peak RSS MiB |", "|---|---|---:|---:|---:|---|---:|---:|"]
    for name, m in mg["methods"].items():
        for v, e in m["variants"].items():
            rss = e.get("peak_rss_mib")
            lines.append(f"| {name} | {v} | {m['times_ms'][v]['median'] / 1e3:.2f} | {e['speedup_vs_reference']:.2f}x | "
                         f"{_best(e)} | "
                         f"{'yes' if e['probs_bitwise_equal'] else 'no'} | {e['label_pixels_changed']} of "
                         f"{m['pixels']} | {'not measured' if rss is None else f'{rss:.0f}'} |")
    return [*lines, ""]
