"""Building blocks shared by several baselines (the guided-filter operations of DenseCRF, GF and DGF;
the perturbed training masks of CascadePSP and CRM)."""
