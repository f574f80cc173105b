"""Doors to the outside world: storage, work directories, the studio app."""
