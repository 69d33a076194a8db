#!/usr/bin/env bash
# Runs a list of tools/gpu/run.sh invocations in one call on the lent GPU machine (each start of
# it costs minutes, so every variant of a measurement goes in one list). LIST has one run.sh
# argument line per run (blank lines and # comments skipped); each run's output goes to
# $OUT/bN.log (or ./gpu-batch/bN.log without OUT), ending with its exit status and wall time.
#   bash tools/gpu/batch.sh .gpu/runs.txt
set -u
list=${1:?usage: batch.sh LIST}
out=${OUT:-gpu-batch}
mkdir -p "$out"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
i=0
while IFS= read -r line; do
  [[ -z $line || $line == \#* ]] && continue
  i=$((i + 1))
  log=$out/b$i.log
  echo "== $i: $line" >"$log"
  start=$(date +%s)
  eval bash "$root/tools/gpu/run.sh" "$line" >>"$log" 2>&1
  echo "rc=$? wall=$(($(date +%s) - start))s" >>"$log"
  tail -1 "$log"
done <"$list"
