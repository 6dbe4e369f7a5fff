"""SegRefiner (NeurIPS 2023): discrete-diffusion mask refinement, our own implementation (Apache-2.0)."""
