"""Seaborn figures, one function per figure, grouped by the module whose output they draw."""
