# TAP helpers for the shell tests. Sourced; expects $MNEME (the binary) and
# $MNEME_SRCDIR (the source tree), which `make check` sets.
: "${MNEME:?run through make check}"
: "${MNEME_SRCDIR:?run through make check}"
tap_n=0
tap_failed=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mneme-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

ok() {   # ok CONDITION-EXIT-STATUS DESCRIPTION
    local status=$1; shift
    tap_n=$((tap_n + 1))
    if [ "$status" = 0 ]; then
        echo "ok $tap_n - $*"
    else
        echo "not ok $tap_n - $*"
        tap_failed=$((tap_failed + 1))
    fi
}

diag() { printf '# %s\n' "$@"; }

# check DESCRIPTION COMMAND...: one test point from a command's status
check() {
    local desc=$1; shift
    "$@" >/dev/null 2>&1
    ok $? "$desc"
}

# contains FILE TEXT: fixed-string search
contains() { grep -qF -- "$2" "$1"; }

done_testing() {
    echo "1..$tap_n"
    [ "$tap_failed" = 0 ]
}

# json FILE FILTER: a value from a JSON file (jq filter)
json() { jq -r "$2" "$1"; }

# ge A B / lt A B: floating-point comparisons for assertions
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

# need_hf_model: PY and HFM (tests/hf_model.py, which writes small Hugging
# Face folders and computes their outputs with numpy), or a TAP skip
need_hf_model() {
    PY=/usr/bin/python3
    if ! "$PY" -c 'import numpy' 2>/dev/null; then
        echo "1..0 # SKIP python3-numpy is not installed (apt-get install python3-numpy)"
        exit 0
    fi
    HFM="$PY $MNEME_SRCDIR/tests/hf_model.py"
}

# hf_texts DIR: texts of the small models' vocabulary words in DIR:
# orig.eval.tsv (two classes at random), new.train.tsv and new.eval.tsv
# (is "great" in it?), general.txt (sentences for masked-language
# modelling); after need_hf_model
hf_texts() {
    "$PY" - "$1" <<'EOF'
import random, sys
d = sys.argv[1]
words = ("the a movie film was is great awful good bad plot acting not very "
         "and but it i liked hated boring fun story end").split()
rng = random.Random(5)
def text():
    return " ".join(rng.choice(words) for _ in range(rng.randint(3, 9)))
with open(f"{d}/orig.eval.tsv", "w") as f:
    for i in range(60):
        f.write(f"{text()}\tclass{rng.randint(0, 1)}\n")
for name, n in (("new.train.tsv", 160), ("new.eval.tsv", 60)):
    with open(f"{d}/{name}", "w") as f:
        for i in range(n):
            t = text()
            f.write(f"{t}\t{'yes' if 'great' in t.split() else 'no'}\n")
with open(f"{d}/general.txt", "w") as f:
    for i in range(50):
        f.write(text().capitalize() + ".\n")
EOF
}

# need_tmux: the real-terminal tests skip (with a reason) without tmux,
# else get its helpers (tests/tmux.sh)
need_tmux() {
    if ! command -v tmux >/dev/null 2>&1; then
        echo "1..0 # SKIP tmux is not installed (apt-get install tmux)"
        exit 0
    fi
    . "$MNEME_SRCDIR/tests/tmux.sh"
}
