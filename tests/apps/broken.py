"""A module that fails while it is imported (for the worker's --router errors)."""

raise RuntimeError("this module is broken on purpose")
