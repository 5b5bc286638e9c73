"""A window's result: computed now from the stored samples, or frozen when it closed.

Owns a window's scope (scope.py), its current result through the shared evaluation
(windows.py) and the closed windows' frozen revisions (frozen.py). May import reporting/
(a frozen result keeps its report), storage/, evaluation/ and the shared base; never web/,
commands/ or central/.
"""
