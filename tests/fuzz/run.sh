#!/bin/sh
# `make fuzz`: builds each harness with clang's libFuzzer under
# AddressSanitizer and UndefinedBehaviorSanitizer, against the engine's
# sources compiled again with the same flags (not the gcc libmneme.a), then
# runs each for FUZZ_SECONDS. The checked-in corpus (seeds and the
# reproducers of every crash fixed so far) runs first, so a regression
# fails at once; what a run adds goes to the build tree's tests/fuzz/work.
#
# Make passes: FUZZ_CC FUZZ_SECONDS FUZZ_HARNESSES FUZZ_SOURCES FUZZ_CFLAGS
# FUZZ_LIBS FUZZ_SRCDIR FUZZ_BUILDDIR; FUZZ_REQUIRED=1 turns a missing
# clang into a failure (CI); FUZZ_ARGS adds libFuzzer options.
set -u
srcdir=${FUZZ_SRCDIR:-.}
builddir=${FUZZ_BUILDDIR:-.}
cc=${FUZZ_CC:-clang}
seconds=${FUZZ_SECONDS:-60}
out=$builddir/tests/fuzz/build
work=$builddir/tests/fuzz/work
flags="-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"

skip() {
    if [ "${FUZZ_REQUIRED:-0}" = 1 ]; then
        echo "make fuzz: $1" >&2
        exit 1
    fi
    echo "make fuzz: skipped: $1"
    exit 0
}

command -v "$cc" >/dev/null 2>&1 ||
    skip "no $cc (on Debian: apt-get install clang libclang-rt-14-dev)"
mkdir -p "$out/obj" "$work" || exit 1
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' \
    >"$out/probe.c"
"$cc" -fsanitize=fuzzer,address,undefined "$out/probe.c" -o "$out/probe" >"$out/probe.log" 2>&1 ||
    skip "$cc cannot link -fsanitize=fuzzer (libFuzzer needs clang and its runtime; on Debian: apt-get install clang libclang-rt-14-dev)"

# The engine, instrumented; an object is rebuilt when its source or any
# header is newer.
newest_header=$(ls -t "$srcdir"/src/*.h "$srcdir"/tests/fuzz/*.h | head -n 1)
objs=
for src in $FUZZ_SOURCES; do
    obj=$out/obj/$(basename "$src" .c).o
    objs="$objs $obj"
    if [ ! -f "$obj" ] || [ "$srcdir/$src" -nt "$obj" ] || [ "$newest_header" -nt "$obj" ]; then
        echo "  FUZZCC   $src"
        $cc $flags -fsanitize=fuzzer-no-link -std=c11 -D_GNU_SOURCE -I"$srcdir/src" \
            -DMNEME_SRCDIR="\"$srcdir\"" $FUZZ_CFLAGS -c "$srcdir/$src" -o "$obj" || exit 1
    fi
done

status=0
for h in $FUZZ_HARNESSES; do
    bin=$out/fuzz_$h
    echo "  FUZZLD   tests/fuzz/fuzz_$h"
    $cc $flags -fsanitize=fuzzer -std=c11 -D_GNU_SOURCE -I"$srcdir/src" -I"$srcdir/tests/fuzz" \
        "$srcdir/tests/fuzz/fuzz_$h.c" $objs $FUZZ_LIBS -o "$bin" || exit 1
done

for h in $FUZZ_HARNESSES; do
    bin=$out/fuzz_$h
    mkdir -p "$work/$h" "$work/artifacts"
    dict=
    [ -f "$srcdir/tests/fuzz/$h.dict" ] && dict="-dict=$srcdir/tests/fuzz/$h.dict"
    log=$work/$h.log
    # stdout/stderr of the code under test are closed (predict's input
    # path reports bad lines on stderr); libFuzzer keeps its own.
    OPENBLAS_NUM_THREADS=1 UBSAN_OPTIONS=print_stacktrace=1 \
        LSAN_OPTIONS="suppressions=$srcdir/tests/fuzz/lsan.supp:print_suppressions=0" \
        "$bin" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -close_fd_mask=3 \
        -print_final_stats=1 -artifact_prefix="$work/artifacts/$h-" $dict ${FUZZ_ARGS:-} \
        "$work/$h" "$srcdir/tests/fuzz/corpus/$h" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\).*/cov \1 ft \2/p')
    if [ "$rc" = 0 ]; then
        echo "fuzz_$h: ok: ${execs:-?} runs in ${seconds}s (${speed:-?}/s), ${cov:-no coverage line}"
    else
        status=1
        echo "fuzz_$h: FAILED (exit $rc); the log is $log:"
        grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -n 20
        tail -n 40 "$log"
    fi
done
exit $status
