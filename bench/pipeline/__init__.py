"""Units and sweeps: building a unit, running a sweep, training what it needs, checking its config before."""
