#!/bin/sh
# The gradient checks under OpenBLAS's generic kernels as well as under the
# ones mneme picks for this CPU: both must give correct gradients.
. "$MNEME_SRCDIR/tests/lib.sh"
for t in test_layers test_model; do
    OPENBLAS_CORETYPE=Prescott "$MNEME_BUILDDIR/tests/$t" >"$TMP/out" 2>&1
    ok $? "$t passes on the Prescott kernels ($(grep -o 'OpenBLAS core [A-Za-z0-9]*' "$TMP/out"))"
    "$MNEME_BUILDDIR/tests/$t" >"$TMP/out" 2>&1
    ok $? "$t passes on the kernels mneme chooses ($(grep -o 'OpenBLAS core [A-Za-z0-9]*' "$TMP/out"))"
done
done_testing
