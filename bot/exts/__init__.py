"""Feature extensions, loaded automatically: each package's `__init__.py` has only `setup()`,
and modules whose names start with `_` are its private parts."""
