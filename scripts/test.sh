#!/usr/bin/env bash
# The whole test suite, as the README's second command and CI's entry point.
# Run as root on Debian 12: installs what the tests need, builds everything,
# runs every test (the namespace end-to-end tests too: as root they run,
# otherwise they skip with a printed reason), then checks fmt and clippy.
# Exits non-zero when any step fails; prints a summary at the end.
set -uo pipefail
cd "$(dirname "$0")/.."

results=()
failed=0
start_all=$(date +%s)

step() {
    local name=$1 limit=$2
    shift 2
    echo
    echo "==== $name: $*"
    local t0 rc
    t0=$(date +%s)
    timeout --kill-after=30 "$limit" "$@" </dev/null
    rc=$?
    local took=$(( $(date +%s) - t0 ))
    if [ "$rc" -eq 0 ]; then
        results+=("ok      ${took}s  $name")
    else
        [ "$rc" -eq 124 ] && name="$name (timed out after ${limit}s)"
        results+=("FAILED  ${took}s  $name (exit $rc)")
        failed=1
    fi
    return "$rc"
}

summary() {
    echo
    echo "==== summary ($(( $(date +%s) - start_all ))s)"
    printf '  %s\n' "${results[@]}"
    if [ "$failed" -ne 0 ]; then
        echo "test.sh: FAILED"
    else
        echo "test.sh: all steps passed"
    fi
}

if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: not root: skipping install-deps.sh; namespace tests will skip" >&2
else
    step "install dependencies" 600 ./scripts/install-deps.sh || { summary; exit 1; }
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "test.sh: cargo not found; install a Rust toolchain (rustup, stable >= 1.85)" >&2
    exit 1
fi

test_log=$(mktemp)
trap 'rm -f "$test_log"' EXIT
if step "build" 600 cargo build --workspace --all-targets; then
    step "tests" 600 bash -o pipefail -c 'cargo test --workspace --no-fail-fast 2>&1 | tee "$0"' "$test_log"
    failing=$(grep -E '^test .* \.\.\. FAILED$' "$test_log" | sed -E 's/^test (.*) \.\.\. FAILED$/\1/' | sort -u)
    for impl in ours reference; do
        ok=$(grep -cE "^test .*::$impl \.\.\. ok$" "$test_log" || true)
        bad=$(grep -cE "^test .*::$impl \.\.\. FAILED$" "$test_log" || true)
        results+=("note    per-daemon cases against $impl: $ok passed, $bad failed")
    done
    skipped=$(grep -c '^skipping ' "$test_log" || true)
    [ "$skipped" -gt 0 ] && results+=("note    $skipped test(s) skipped themselves (see 'skipping' lines)")
    while IFS= read -r t; do
        [ -n "$t" ] && results+=("        failed: $t")
    done <<<"$failing"
else
    results+=("skipped      tests (build failed)")
fi
step "rustfmt" 120 cargo fmt --all -- --check
step "clippy" 300 cargo clippy --workspace --all-targets -- -D warnings

summary
exit "$failed"
