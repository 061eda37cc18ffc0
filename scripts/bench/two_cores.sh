#!/usr/bin/env bash
# What a second core gives on this machine for perfectly parallel work: one `sha256sum` of
# 400 MB of zeros pinned to CPU 1, against two at once pinned to CPUs 0 and 1 (no shared data,
# no I/O: the file is on tmpfs). Prints, per round, the throughput gain 2 · one / two, the
# ceiling for any "speed-up from 1 to 2 threads" measured here.
#   scripts/bench/two_cores.sh [ROUNDS]
set -euo pipefail
rounds=${1:-4}
file="$(mktemp /dev/shm/two_cores.XXXXXX)"
trap 'rm -f "$file"' EXIT
head -c 400M /dev/zero > "$file"
now() { date +%s.%N; }
for round in $(seq "$rounds"); do
    start=$(now)
    taskset -c 0 sha256sum "$file" > /dev/null &
    taskset -c 1 sha256sum "$file" > /dev/null
    wait
    two=$(awk -v a="$start" -v b="$(now)" 'BEGIN { print b - a }')
    start=$(now)
    taskset -c 1 sha256sum "$file" > /dev/null
    one=$(awk -v a="$start" -v b="$(now)" 'BEGIN { print b - a }')
    awk -v r="$round" -v one="$one" -v two="$two" \
        'BEGIN { printf "round %d: one %.2f s, two at once %.2f s, gain %.2f\n", r, one, two, 2 * one / two }'
done
