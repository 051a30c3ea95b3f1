"""Helpers shared by test folders (import them as ``tests._helpers.<module>``); a folder's own
helpers stay in its ``_*.py`` modules and conftest.py."""
