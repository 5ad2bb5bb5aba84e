#!/usr/bin/env bash
# Random fuzzing, memory- and time-capped, one pytest process per seed.
# The default suite runs fixed (derandomized) examples; this hunts for new hostile inputs.
#   scripts/fuzz_hunt.sh [first-seed] [runs] [examples-per-run] [pytest selection]
# (default selection: the generated TIFF headers; e.g. tests/fuzz/test_specs_and_models.py
# for specs and weights files). A run that fails, runs out of memory (ulimit -v, 4 GiB)
# or time (300 s) prints its seed and the falsifying example (hypothesis prints it); the
# whole output of a failing seed is kept in ${FUZZ_LOGS:-/tmp}/fuzz-seed-N.log.
set -u
cd "$(dirname "$0")/.."
first=${1:-0}; runs=${2:-10}; examples=${3:-500}
target=${4:-tests/fuzz/test_tiff_headers.py::test_generated_headers}
for ((seed = first; seed < first + runs; seed++)); do
    out=$( (ulimit -v 4194304; GEOLABEL_FUZZ_EXAMPLES=$examples timeout 300 \
        .venv/bin/python -m pytest -q -p no:cacheprovider -x "$target" \
        --hypothesis-seed="$seed" --hypothesis-show-statistics) 2>&1)
    rc=$?
    if [ $rc -ne 0 ]; then
        log="${FUZZ_LOGS:-/tmp}/fuzz-seed-$seed.log"
        echo "$out" > "$log"
        echo "seed $seed: exit $rc ($log)"
        echo "$out" | grep -A 14 "Falsifying example" | head -30
    else
        echo "seed $seed: ok"
    fi
done
