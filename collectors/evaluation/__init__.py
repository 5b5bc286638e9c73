"""The standard's formulas as pure functions over plain data: no I/O, no database."""
