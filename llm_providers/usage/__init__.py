"""Usage: the rows every call writes, the daily rollup, the stats and dashboard reads, prices."""
