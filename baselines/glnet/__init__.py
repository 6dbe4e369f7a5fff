"""The glnet method: its registered class in ``method``, its parts in the sibling modules."""
