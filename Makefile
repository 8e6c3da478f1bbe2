# Benchmarks; not part of the tests (scripts/test.sh). Run as root on Debian 12.
# RUNS=N sets the runs per tool (default 3).
.PHONY: bench bench-dnf bench-template

# pkg-cacher against apt-cacher-ng, squid and nginx with apt clients, then
# against squid and nginx with dnf clients; each appends to docs/benchmarks.md.
bench:
	bash bench/cache.sh
	bash bench/dnf.sh

# The dnf scenario alone: a local RPM repository, pkg-cacher against squid and nginx.
bench-dnf:
	bash bench/dnf.sh

# vzpkg create cache against mmdebstrap through a warm pkg-cacher.
bench-template:
	bash bench/template.sh
