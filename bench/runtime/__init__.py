"""How code runs: distributed ranks, unit worker processes and the lock, timing, memory and provenance."""
