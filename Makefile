# Benchmarks; not part of the tests (scripts/test.sh). Run as root on Debian 12.
# RUNS=N sets the runs per tool (default 3).
.PHONY: bench bench-template

# pkg-cacher against apt-cacher-ng, squid and nginx; appends to docs/benchmarks.md.
bench:
	bash bench/cache.sh

# vzpkg create cache against mmdebstrap through a warm pkg-cacher.
bench-template:
	bash bench/template.sh
