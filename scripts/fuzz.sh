#!/usr/bin/env bash
# Runs every fuzz target (a `func FuzzX` in a _test.go file under cmd/ or
# internal/) for a few seconds, one target per `go test` invocation.
# FUZZTIME sets the budget per target (default 5000x: runs; or a duration such as 5m). A crasher fails the run;
# go test saves it in the package's testdata/fuzz/FuzzX: fix the bug and
# commit the file, which `go test` then runs as a regression case.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# An execution count, not a duration: with a duration, Go before 1.27 can
# fail a target with a bare "context deadline exceeded" at the end of the
# window (golang/go#75804), which would make CI flaky. 5000 runs take a few
# seconds for the slowest target (FuzzLoad) and well under one for the others.
fuzztime=${FUZZTIME:-5000x}
# The parsers of what clients send run 20 times longer by default: they are
# fast (about 10,000 runs a second here), and what they miss there is a
# security bug.
declare -A budget=([FuzzHitRequest]=100000x [FuzzResolve]=100000x)

targets=$(grep -rEo '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' cmd internal | sed -E 's/:func /:/' | sort)
if [ -z "$targets" ]; then
	echo "no fuzz targets found" >&2
	exit 1
fi
for t in $targets; do
	dir=$(dirname "${t%%:*}") name=${t##*:}
	t_budget=$fuzztime
	[ -z "${FUZZTIME:-}" ] && [ -n "${budget[$name]:-}" ] && t_budget=${budget[$name]}
	echo "-- $name in ./$dir for $t_budget"
	# Short runs: minimising each new input for the default 60 s would use
	# up the time; crashers are saved either way.
	go test -run='^$' -fuzz="^${name}\$" -fuzztime="$t_budget" -fuzzminimizetime=100x "./$dir"
done
