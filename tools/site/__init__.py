"""The static site of the executed tutorial: `python -m tools.site.build OUT` (make site)."""
