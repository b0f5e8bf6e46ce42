"""Tools for the person who owns the repo, run from its root: `python -m tools.publish` (`make publish`)."""
