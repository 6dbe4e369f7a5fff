"""What a run shows: tables (model, notes, formats), aggregates, plots, panels, scores and the run outcome."""
