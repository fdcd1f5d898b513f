#!/bin/sh
# mneme study: three cheap remedies on the built-in pair, each a branch
# forked at the start of fine-tuning. study.json must match the branches'
# own summaries; a remedy that changes the method (LoRA) starts afresh from
# the base and gives exactly the run of that experiment from the same base;
# several seeds give means, spreads and paired tests that follow from the
# runs; an interrupted study resumes to the same numbers; the workbench
# shows every remedy in the compare view; bad input is a clear error.
. "$MNEME_SRCDIR/tests/lib.sh"
CFG="$MNEME_SRCDIR/tests/data/tiny.cfg"
command -v jq >/dev/null 2>&1 || { echo "1..0 # SKIP jq is not installed"; exit 0; }
command -v python3 >/dev/null 2>&1 || { echo "1..0 # SKIP python3 is not installed"; exit 0; }
REM=$TMP/remedies.cfg
cat >"$REM" <<'EOF'
# three cheap remedies
gentle = { about = "a lower rate"; set = [ "finetune.lr=3e-4" ]; };
lora = { about = "LoRA rank 4";
         set = [ "finetune.method=lora", "finetune.lora.r=4", "finetune.lora.targets=query value" ]; };
freeze = { set = [ "finetune.freeze.keep_last=0" ]; };
EOF

S=$TMP/study
"$MNEME" study "$CFG" --remedies "$REM" --out "$S" --headless --quiet >"$TMP/out" 2>"$TMP/err"
st=$?
ok $st "a study of three remedies runs headless"
[ $st = 0 ] || sed 's/^/#   /' "$TMP/err"
R=$S/seed-7
for b in gentle lora freeze; do
    [ "$(json "$R/branches/$b/branch.json" '"\(.step) \(.parent)"')" = "0 main" ] || echo "$b" >>"$TMP/bad-fork"
done
ok $([ ! -f "$TMP/bad-fork" ]; echo $?) "each remedy is a branch of main forked at fine-tuning step 0"
ok $([ "$(json "$S/study.json" .status)" = finished ] &&
     [ "$(json "$S/study.json" '[.remedies[].name] | join(",")')" = "tiny,gentle,lora,freeze" ]; echo $?) \
   "study.json lists the experiment as given, then the remedies in the file's order"

# every figure of study.json is the run's own summary's
cat >"$TMP/match.jq" <<'EOF'
.remedies[] | . as $r | .runs[0] as $u |
  [$r.name, $u.dir, $r.new_acc.mean, $r.forgetting.mean, $r.original_acc.mean, $r.trainable_fraction,
   ($r.adapter_off_original.mean // -1)] | @tsv
EOF
jq -r -f "$TMP/match.jq" "$S/study.json" | while IFS="$(printf '\t')" read -r name dir acc forget orig frac off; do
    sum=$S/$dir/summary.json
    want=$(jq -r '[.final.new.acc, .forgetting, .final.original.acc, .trainable_fraction,
                  (.final_adapter_off.original.acc // -1)] | @tsv' "$sum")
    got=$(printf '%s\t%s\t%s\t%s\t%s' "$acc" "$forget" "$orig" "$frac" "$off")
    [ "$want" = "$got" ] || echo "$name: study $got, summary $want" >>"$TMP/mismatch"
done
ok $([ ! -f "$TMP/mismatch" ]; echo $?) "study.json's figures are the branches' own summaries"
[ -f "$TMP/mismatch" ] && sed 's/^/#   /' "$TMP/mismatch"
ok $([ "$(json "$S/study.json" '.remedies[] | select(.name == "lora") | .trainable_fraction < 0.1')" = true ] &&
     [ "$(json "$S/study.json" '.remedies[] | select(.name == "lora") | .adapter_off_original.mean')" = \
       "$(json "$R/summary.json" .baseline.original.acc)" ]; echo $?) \
   "the LoRA remedy trains its adapters only, and with them off the original task is as at the base"

# the method changed at the fork: fine-tuning began afresh from the base,
# exactly as a run of that experiment from the same base does
"$MNEME" run --headless "$CFG" --out "$TMP/lora-run" --quiet \
    --set base.checkpoint="$R/checkpoints/base.safetensors" --set finetune.method=lora \
    --set finetune.lora.r=4 --set "finetune.lora.targets=query value" >/dev/null 2>&1
strip='select(.phase == "finetune") | del(.elapsed_s, .branch)'
ok $([ -s "$TMP/lora-run/metrics.jsonl" ] &&
     [ "$(jq -c "$strip" "$TMP/lora-run/metrics.jsonl" | md5sum)" = \
       "$(jq -c "$strip" "$R/branches/lora/metrics.jsonl" | md5sum)" ]; echo $?) \
   "the LoRA branch's evaluations equal a LoRA run from the same base, bit for bit"
ok $([ "$(jq -c 'select(.phase == "base")' "$R/metrics.jsonl" | md5sum)" = \
       "$(jq -c 'select(.phase == "base")' "$R/branches/lora/metrics.jsonl" | md5sum)" ]; echo $?) \
   "and it keeps the base's history from before the fork"
"$MNEME" replay "$R" --branch lora --out "$TMP/replay" --quiet >"$TMP/replay.out" 2>&1
ok $? "a replay of the LoRA branch gives identical evaluations"

# the table
grep -q "^remedy  *new acc" "$TMP/out" && grep -q "^tiny  .*no remedy" "$TMP/out" &&
    grep -q "^lora  .*adapter off: orig" "$TMP/out" && grep -q "a difference without \* is noise" "$TMP/out"
ok $? "the table: one row per remedy, the experiment first, and what is noise"
# freeze-top forgets far less than full fine-tuning: beyond noise
ok $([ "$(json "$S/study.json" '.remedies[] | select(.name == "freeze") | .differs.forgetting')" = true ] &&
     grep -q "^freeze .*±[0-9.]* \*" "$TMP/out"; echo $?) \
   "freezing the encoder forgets less beyond noise, and the table marks it"
# the Pareto front, from the means
cat >"$TMP/front.jq" <<'EOF'
[.remedies[] | {n: .name, a: .new_acc.mean, f: .forgetting.mean, p: .pareto}] as $r |
  [$r[] | . as $x | ($r | map(select(.n != $x.n and .f <= $x.f and .a >= $x.a and (.f < $x.f or .a > $x.a))) | length == 0) == $x.p] | all
EOF
ok $([ "$(jq -f "$TMP/front.jq" "$S/study.json")" = true ] &&
     [ "$(json "$S/study.json" '[.remedies[] | select(.pareto)] | length')" -ge 1 ]; echo $?) \
   "the Pareto front is the remedies no other beats on both axes"
"$MNEME" study "$CFG" --remedies "$REM" --out "$TMP/again" --headless --quiet >/dev/null 2>&1
strip_time='del(.remedies[].time_s, .remedies[].runs[].time_s, .remedies_file)'
ok $([ "$(jq -c "$strip_time" "$S/study.json")" = "$(jq -c "$strip_time" "$TMP/again/study.json")" ]; echo $?) \
   "the same study again gives the same numbers"

# the trade-off figure and the study's report
ok $([ -s "$S/tradeoff.png" ] && grep -q "trade-off figure: $S/tradeoff.png" "$TMP/out" &&
     python3 "$MNEME_SRCDIR/tests/png.py" "$S/tradeoff.png" size >"$TMP/png" 2>&1 &&
     [ "$(cat "$TMP/png")" = "960 640" ]; echo $?) "the trade-off figure is drawn, 960x640 ($(cat "$TMP/png"))"
"$MNEME" report "$S" -o "$TMP/study.html" >/dev/null 2>"$TMP/rerr"
ok $? "mneme report on a study folder writes its page ($(cat "$TMP/rerr"))"
cat >"$TMP/page.py" <<'PY'
import html.parser, json, sys
page, study = sys.argv[1], json.load(open(sys.argv[2]))
class P(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.rows, self.cell, self.svg_in = [], [], None, set()
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("table", "figure"):
            self.stack.append(a.get("id"))
        if tag == "svg" and self.stack:
            self.svg_in.add(self.stack[-1])
        if tag == "tr" and self.stack and self.stack[-1] == "study":
            self.rows.append([])
        if tag == "td" and self.stack and self.stack[-1] == "study":
            self.cell = ""
    def handle_endtag(self, tag):
        if tag in ("table", "figure") and self.stack:
            self.stack.pop()
        if tag == "td" and self.cell is not None:
            self.rows[-1].append(self.cell.strip())
            self.cell = None
    def handle_data(self, d):
        if self.cell is not None:
            self.cell += d
p = P()
p.feed(open(page, encoding="utf-8").read())
rows = [r for r in p.rows if r]
names = [r[0] for r in rows]
want = [r["name"] for r in study["remedies"]]
ok = names == want and "tradeoff" in p.svg_in and "figure" in p.svg_in
for r, row in zip(study["remedies"], rows):
    ok = ok and row[1].startswith("%.3f" % r["new_acc"]["mean"]) and row[4].startswith("%.3f" % r["forgetting"]["mean"])
print("ok" if ok else "rows %s, want %s, svg in %s" % (names, want, sorted(x for x in p.svg_in if x)))
PY
res=$(python3 "$TMP/page.py" "$TMP/study.html" "$S/study.json" 2>&1)
ok $([ "$res" = ok ]; echo $?) "the page holds the study's table (its figures) and the trade-off figure, then the run's ($res)"

BROWSER=$(command -v chromium || command -v chromium-browser || true)
if [ -n "$BROWSER" ]; then
    timeout 120 "$BROWSER" --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --user-data-dir="$TMP/chromium" --window-size=1280,1000 \
        --screenshot="$TMP/shot.png" "file://$TMP/study.html" >/dev/null 2>&1
    set -- $(python3 "$MNEME_SRCDIR/tests/png.py" "$TMP/shot.png" size 2>/dev/null) \
        $(python3 "$MNEME_SRCDIR/tests/png.py" "$TMP/shot.png" near 0072b2 009e73 d55e00 2>/dev/null)
    ok $([ "${3:-0}" -gt 50 ] && [ "${4:-0}" -gt 50 ] && [ "${5:-0}" -gt 20 ]; echo $?) \
       "Chromium shows the trade-off figure at the top of the page: ${3:-?} pixels of the remedies' blue, ${4:-?} of the front's green, ${5:-?} of main's vermillion (${1:-?}x${2:-?})"
else
    ok 0 "# SKIP Chromium is not installed (apt-get install chromium)"
fi

"$MNEME" runs "$TMP" >"$TMP/runs" 2>&1
grep -q "^study  *study  *3 remedies x 1 seed: mneme report $TMP/study" "$TMP/runs"
ok $? "mneme runs lists a study folder as a study, with what to do with it"

# seeds: one family per seed; means, spreads and paired tests from the runs
S2=$TMP/seeds
"$MNEME" study "$CFG" --remedies "$REM" --only gentle,freeze --seeds 3 --out "$S2" --headless --quiet \
    >"$TMP/out2" 2>"$TMP/err2"
ok $? "--seeds 3 --only gentle,freeze runs three families"
ok $([ -f "$S2/seed-7/branches/freeze/summary.json" ] && [ -f "$S2/seed-9/branches/gentle/summary.json" ] &&
     [ ! -d "$S2/seed-7/branches/lora" ]; echo $?) "seed-7, seed-8 and seed-9, with the remedies asked for only"
cat >"$TMP/stats.jq" <<'EOF'
[.remedies[] | .runs as $u | ($u | map(.forgetting)) as $v | ($v | add / length) as $m |
  (($v | map((. - $m) * (. - $m)) | add) / (($v | length) - 1) | sqrt) as $sd |
  (($m - .forgetting.mean) | fabs) < 1e-9 and (($sd - .forgetting.sd) | fabs) < 1e-6 and
  ((.forgetting.ci95 - 4.303 * $sd / (3 | sqrt)) | fabs) < 1e-6] | all
EOF
ok $([ "$(jq -f "$TMP/stats.jq" "$S2/study.json")" = true ] &&
     [ "$(json "$S2/study.json" '[.remedies[].runs | length] | unique | join(",")')" = 3 ]; echo $?) \
   "each remedy's mean, sd and 95% interval follow from its three runs (t, 2 degrees of freedom)"
grep -q "3 seeds: means; ± is the 95% interval of the mean" "$TMP/out2"
ok $? "the table says how the interval was made"

# an interrupted study resumes to the numbers of one that was not
S3=$TMP/interrupted
"$MNEME" study "$CFG" --remedies "$REM" --only freeze,lora --out "$S3" --headless --quiet \
    --set finetune.epochs=60 >"$TMP/out3" 2>"$TMP/err3" &
pid=$!
for i in $(seq 1 100); do
    [ -d "$S3/seed-7/branches/lora" ] && break
    sleep 0.1
done
sleep 0.5
kill -TERM $pid
wait $pid
st=$?
if [ "$(json "$S3/study.json" .status)" = running ]; then
    ok $([ $st = 1 ] && grep -q "mneme study --resume $S3" "$TMP/err3"; echo $?) \
       "a signal stops the study with a checkpoint and says how to continue"
else
    ok 0 "# the study finished before the signal: nothing to interrupt"
fi
"$MNEME" study --resume "$S3" --headless --quiet >/dev/null 2>&1
ok $? "mneme study --resume finishes it"
"$MNEME" study "$CFG" --remedies "$REM" --only freeze,lora --out "$TMP/whole" --headless --quiet \
    --set finetune.epochs=60 >/dev/null 2>&1
ok $([ "$(json "$S3/study.json" .status)" = finished ] &&
     [ "$(jq -c "$strip_time" "$S3/study.json")" = "$(jq -c "$strip_time" "$TMP/whole/study.json")" ]; echo $?) \
   "and its study.json equals that of the study run in one go"

# a remedy whose branch is gone is made again, from the same base
jq -c '.remedies[] | select(.name == "freeze") | del(.time_s, .runs[].time_s)' "$S3/study.json" >"$TMP/freeze.before"
rm -rf "$S3/seed-7/branches/freeze"
"$MNEME" study --resume "$S3" --headless --quiet >/dev/null 2>&1
ok $([ $? = 0 ] && [ "$(jq -c '.remedies[] | select(.name == "freeze") | del(.time_s, .runs[].time_s)' "$S3/study.json")" = \
     "$(cat "$TMP/freeze.before")" ]; echo $?) "--resume makes a remedy whose branch is gone again, to the same numbers"

# an imported base: a Hugging Face folder's own head is the original task
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    HFM="/usr/bin/python3 $MNEME_SRCDIR/tests/hf_model.py"
    PY=/usr/bin/python3
    mkdir -p "$TMP/hf"
    hf_texts "$TMP/hf"
    $HFM make "$TMP/hf/bert" --seed 11 --labels 2 --hidden 16 --positions 40 >/dev/null
    cat >"$TMP/hf/exp.cfg" <<'EOF'
name = "hf";
seed = 3;
threads = 1;
base = { from = "bert"; };
original = { eval = "orig.eval.tsv"; };
new = { train = "new.train.tsv"; eval = "new.eval.tsv"; };
finetune = { epochs = 2; lr = 1e-3; batch = 16; };
eval = { every = 4; };
EOF
    "$MNEME" study "$TMP/hf/exp.cfg" --remedies "$REM" --only lora,freeze --out "$TMP/hfstudy" --headless \
        --quiet >"$TMP/hf.out" 2>&1
    ok $([ $? = 0 ] && [ "$(json "$TMP/hfstudy/study.json" '[.remedies[].name] | join(",")')" = hf,lora,freeze ] &&
         [ "$(json "$TMP/hfstudy/study.json" '.remedies[] | select(.name == "lora") | .trainable_fraction < 0.5')" = true ] &&
         [ "$(json "$TMP/hfstudy/study.json" '.remedies[] | select(.name == "lora") | .adapter_off_original.mean')" = \
           "$(json "$TMP/hfstudy/seed-3/summary.json" .baseline.original.acc)" ]; echo $?) \
       "a study of an imported BERT: LoRA (its adapters only, the imported head intact with them off) and freezing ($(tail -n 1 "$TMP/hf.out"))"
else
    ok 0 "# SKIP python3-numpy is not installed: no Hugging Face folder to study"
fi

# bad input: each a clear error, exit 2, nothing trained
bad() {   # bad DESCRIPTION EXPECTED-TEXT ARGS...
    local desc=$1 want=$2; shift 2
    "$MNEME" study "$@" >"$TMP/bad.out" 2>"$TMP/bad.err"
    local st=$?
    [ $st = 2 ] && grep -qF -- "$want" "$TMP/bad.err"
    local r=$?
    ok $r "$desc"
    [ $r = 0 ] || { diag "exit $st, stderr:"; sed 's/^/#   /' "$TMP/bad.err"; }
}
printf 'ewc = { set = [ "finetune.ewc.lambda=1e6" ]\n' >"$TMP/syntax.cfg"
bad "a study file with a syntax error names file and line" "syntax.cfg:" "$CFG" --remedies "$TMP/syntax.cfg" --headless --out "$TMP/b1"
printf 'ewc = { set = [ "finetune.ewc.lamda=1e6" ]; };\n' >"$TMP/typo.cfg"
bad "an unknown key names file, line, remedy and key" "typo.cfg:1: remedy ewc: finetune.ewc.lamda" "$CFG" --remedies "$TMP/typo.cfg" --headless --out "$TMP/b2"
printf '# a remedy may not change the base\nwide = { set = [ "model.hidden=64" ]; };\n' >"$TMP/base.cfg"
bad "a remedy that changes the model is refused, with its line" "base.cfg:2: remedy wide: model.hidden cannot change in a fork" "$CFG" --remedies "$TMP/base.cfg" --headless --out "$TMP/b3"
printf 'ewc = { set = [ "finetune.ewc.lambda=1e6" ]; colour = "red"; };\n' >"$TMP/field.cfg"
bad "an unknown setting in a remedy is named" "remedy ewc: unknown setting 'colour'" "$CFG" --remedies "$TMP/field.cfg" --headless --out "$TMP/b4"
bad "--only with an unknown remedy lists those there are" "has no remedy ewc (it has: gentle, lora, freeze)" "$CFG" --remedies "$REM" --only ewc --headless --out "$TMP/b5"
bad "several seeds need --headless" "add --headless" "$CFG" --remedies "$REM" --seeds 2 --out "$TMP/b6"
bad "a folder that already holds a study is not overwritten" "already holds a study" "$CFG" --remedies "$REM" --headless --out "$S"
bad "--resume of a folder that is no study says so" "is $TMP/b7 a study folder?" --resume "$TMP/b7" --headless
ok $([ ! -e "$TMP/b2" ] && [ ! -e "$TMP/b3" ] && [ ! -e "$TMP/b5" ]; echo $?) "refused studies leave no folder behind"

# the workbench: every remedy side by side in the compare view
if command -v tmux >/dev/null 2>&1; then
    . "$MNEME_SRCDIR/tests/tmux.sh"
    cat >"$TMP/pane.sh" <<SH
"$MNEME" study "$CFG" --remedies "$REM" --out "$TMP/live" --set finetune.epochs=40 2>"$TMP/ui.err"
echo "mneme-exit=\$?"
exec sleep 600
SH
    ui_session 120 40 "$TMP/pane.sh"
    wait_for 60 "compare branches"
    st=$?; ok $st "the study opens in the compare view"; show_pane_if $st
    wait_until 60 sh -c "grep -q 'gentle  *main@0' '$TMP/pane' && grep -q 'lora  *main@0' '$TMP/pane' && grep -q 'freeze  *main@0' '$TMP/pane'"
    st=$?; ok $st "the compare view lists every remedy, forked from main at step 0"; show_pane_if $st
    wait_until 120 sh -c "[ \$(grep -c 'finished' '$TMP/pane') -ge 4 ]"
    st=$?; ok $st "all four train side by side to the end"; show_pane_if $st
    quit_ui "mneme-exit="
    grep -q "mneme-exit=0" "$TMP/pane" && grep -q "trade-off figure: $TMP/live/tradeoff.png" "$TMP/pane"
    st=$?; ok $st "leaving the workbench prints the table and writes the figure"; show_pane_if $st
else
    diag "tmux not installed: the workbench part is skipped"
fi

done_testing
