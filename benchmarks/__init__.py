"""Side-by-side benchmarks of opentrain_async against its peers (``make bench``)."""
