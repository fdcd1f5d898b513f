#!/usr/bin/env bash
# `mneme tokenize` against Hugging Face's tokenizers library (the Rust code
# behind BertTokenizerFast, through its Node binding), on a generated
# vocabulary and a few hundred tricky texts: singles and pairs, lowercased
# and not, with and without truncation. .ci/run installs the library under
# .ci/node; elsewhere set MNEME_NODE_PATH to a node_modules folder that has
# it. Without node or the library the test is skipped.
. "$MNEME_SRCDIR/tests/lib.sh"

# The command itself, without the library.
m=$TMP/model
mkdir -p "$m"
printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n!\n' >"$m/vocab.txt"
printf 'Hello world!\r\nhello [MASK]\n' | "$MNEME" tokenize "$m" >"$TMP/out" 2>"$TMP/err"
ok $([ $? = 0 ] && [ "$(cat "$TMP/out")" = "$(printf '[2, 5, 6, 7, 3]\n[2, 5, 4, 3]')" ]; echo $?) \
    "one JSON array of ids a line, [CLS] and [SEP] included, CRLF taken"
printf 'hello world\thello\n' | "$MNEME" tokenize "$m" --pair --max-len 5 >"$TMP/out" 2>"$TMP/err"
ok $([ $? = 0 ] && [ "$(cat "$TMP/out")" = '{"input_ids": [2, 5, 3, 5, 3], "token_type_ids": [0, 0, 0, 1, 1]}' ]; echo $?) \
    "--pair: input_ids and token_type_ids, cut by --max-len"
printf 'a\tb\nno tab here\n' | "$MNEME" tokenize "$m" --pair >"$TMP/out" 2>"$TMP/err"
ok $([ $? = 2 ] && grep -q 'stdin:2: expected text<TAB>text' "$TMP/err" && [ "$(wc -l <"$TMP/out")" = 1 ]; echo $?) \
    "--pair: a line without a tab is exit 2 naming the line"
printf 'a\tb\tc\n' | "$MNEME" tokenize "$m" --pair >/dev/null 2>"$TMP/err"
ok $([ $? = 2 ] && grep -q 'stdin:1:' "$TMP/err"; echo $?) "--pair: two tabs are an error too"
"$MNEME" tokenize "$TMP/nowhere" </dev/null >/dev/null 2>"$TMP/err"
ok $([ $? = 2 ] && grep -q 'nowhere/vocab.txt' "$TMP/err"; echo $?) "a missing vocab.txt: exit 2 naming it"
"$MNEME" tokenize "$m" --max-len 2 --pair </dev/null >/dev/null 2>"$TMP/err"
ok $([ $? = 2 ] && grep -q -- '--max-len 2' "$TMP/err"; echo $?) "--max-len too small for a pair: exit 2"
"$MNEME" tokenize "$m" --max-len x </dev/null >/dev/null 2>"$TMP/err"
ok $([ $? = 2 ] && grep -q "not 'x'" "$TMP/err"; echo $?) "--max-len x: exit 2"
"$MNEME" tokenize </dev/null >/dev/null 2>"$TMP/err"
ok $([ $? = 2 ] && grep -q 'usage: mneme tokenize' "$TMP/err"; echo $?) "no folder: usage, exit 2"
"$MNEME" tokenize "$m" --bogus </dev/null >/dev/null 2>"$TMP/err"
ok $([ $? = 2 ] && grep -q 'unknown option --bogus' "$TMP/err"; echo $?) "an unknown option: exit 2"

modules=${MNEME_NODE_PATH:-$MNEME_SRCDIR/.ci/node/node_modules}
if ! command -v node >/dev/null 2>&1; then
    diag "node is not installed: the comparison with the tokenizers library is skipped"
    done_testing
    exit
fi
if ! NODE_PATH=$modules node -e "require('tokenizers')" >/dev/null 2>&1; then
    diag "the tokenizers library is not in $modules (.ci/run installs it): the comparison is skipped"
    done_testing
    exit
fi
ref() { NODE_PATH=$modules node "$MNEME_SRCDIR/tests/tokenizers.js" "$@"; }

ref gen "$TMP"
ok $? "the reference generates a vocabulary and $(wc -l <"$TMP/texts.txt") texts"

# compare NAME INPUT LOWERCASE MAX_LEN [pair]: one test point
compare() {
    local name=$1 input=$2 lower=$3 max=$4 pair=${5:-}
    local dir=$TMP/$name opts=()
    mkdir -p "$dir"
    cp "$TMP/vocab.txt" "$dir/"
    echo "{\"do_lower_case\": $lower}" >"$dir/tokenizer_config.json"
    [ "$max" -gt 0 ] && opts+=(--max-len "$max")
    [ -n "$pair" ] && opts+=(--pair)
    ref encode "$dir" "$lower" "$max" $pair <"$input" >"$dir/want" 2>"$dir/ref.err"
    "$MNEME" tokenize "$dir" "${opts[@]}" <"$input" >"$dir/got" 2>"$dir/err"
    local status=$?
    if [ "$status" = 0 ] && cmp -s "$dir/want" "$dir/got"; then
        ok 0 "$name: $(wc -l <"$dir/got") lines equal"
        return
    fi
    ok 1 "$name: mneme tokenize (exit $status) differs from the tokenizers library"
    diag "$(head -c 2000 "$dir/err" "$dir/ref.err")"
    # The first few differing lines, with their text.
    paste -d '\n' "$input" "$dir/want" "$dir/got" | awk 'NR % 3 == 1 { t = $0 } NR % 3 == 2 { w = $0 }
        NR % 3 == 0 && $0 != w && n++ < 5 { printf "# text: %s\n#  want %s\n#   got %s\n", t, w, $0 }'
}

for lower in true false; do
    compare "single-lower-$lower" "$TMP/texts.txt" "$lower" 0
    compare "single-lower-$lower-max16" "$TMP/texts.txt" "$lower" 16
    compare "pair-lower-$lower" "$TMP/pairs.txt" "$lower" 0 pair
    for max in 3 4 9 16 33; do
        compare "pair-lower-$lower-max$max" "$TMP/pairs.txt" "$lower" "$max" pair
    done
done

done_testing
