#!/bin/sh
# mneme plot: figures checked for what they show, not only for existing.
# The SVG is parsed (each curve's points are the run's evaluations, the
# crossover marker sits at the recorded step, a branch is drawn from its
# fork point), the PDF's text names both tasks and the crossover, the PNG
# has the size asked and is not blank; bad input is a clear error.
. "$MNEME_SRCDIR/tests/lib.sh"
CFG="$MNEME_SRCDIR/tests/data/tiny.cfg"
PY=python3
command -v "$PY" >/dev/null 2>&1 || { echo "1..0 # SKIP python3 is not installed"; exit 0; }
R=$TMP/run
"$MNEME" run --headless "$CFG" --out "$R" --quiet --set finetune.epochs=20 >/dev/null 2>&1
"$MNEME" fork "$R" --at 0 --name lower --set finetune.lr=1e-4 --quiet >/dev/null 2>&1
ok $([ -f "$R/branches/lower/summary.json" ]; echo $?) "a run and a branch of it to draw"

# the SVG's curves: paths by stroke colour, the longest of each colour
cat >"$TMP/svg.py" <<'PY'
import json, re, sys
svg, metrics, branch_metrics, fork = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
text = open(svg).read()
def rgb(hexc):
    c = [int(hexc[i:i + 2], 16) / 255 * 100 for i in (0, 2, 4)]
    return "rgb(%s)" % ",".join(("%.6f" % v).rstrip("0").rstrip(".") + "%" for v in c)
paths = []
for m in re.finditer(r'<path style="([^"]*)" d="([^"]*)"', text):
    stroke = re.search(r"stroke:(rgb\([^)]*\))", m.group(1))
    if not stroke:
        continue
    # the vertices: a move, then each segment's end point (a curve's
    # last pair; a line's only pair)
    pts = []
    for cmd, args in re.findall(r"([MLC])([^MLCZ]*)", m.group(2)):
        nums = [float(v) for v in args.split()]
        if len(nums) >= 2:
            pts.append((nums[-2], nums[-1]))
    paths.append((stroke.group(1), m.group(2), pts))
def curve(hexc):
    c = [p for p in paths if p[0] == rgb(hexc)]
    return max(c, key=lambda p: len(p[2]))[2] if c else []
def finetune(path, since=0):
    out = []
    for line in open(path):
        r = json.loads(line)
        if r["phase"] == "finetune" and r["step"] >= since:
            out.append(r)
    return out
recs = finetune(metrics)
new, orig = curve("0072b2"), curve("d55e00")
res = {"records": len(recs), "new_points": len(new), "original_points": len(orig)}
# x of each point against its step: one linear map for all of them
steps = [r["step"] for r in recs]
if len(new) == len(steps) and len(steps) > 1:
    a = (new[-1][0] - new[0][0]) / (steps[-1] - steps[0])
    res["x_linear"] = all(abs(new[0][0] + a * (s - steps[0]) - x) < 0.01 for (x, _), s in zip(new, steps))
    # y of the new task's accuracy: the same map for every point
    ys = [r["new"]["acc"] for r in recs]
    lo = min(range(len(ys)), key=lambda i: ys[i]); hi = max(range(len(ys)), key=lambda i: ys[i])
    if ys[hi] > ys[lo]:
        b = (new[hi][1] - new[lo][1]) / (ys[hi] - ys[lo])
        res["y_linear"] = all(abs(new[lo][1] + b * (y - ys[lo]) - py) < 0.01 for (_, py), y in zip(new, ys))
    # the crossover marker: a black circle (Bezier arcs) centred on the
    # original task's point at the crossover step
    cross = [r.get("crossover_step") for r in recs if r.get("crossover_step") is not None]
    circles = [p for p in paths if p[0] == rgb("000000") and p[1].count("C") >= 4]
    if cross and circles and len(orig) == len(steps):
        best = None
        for p in circles:
            xs = [x for x, _ in p[2]]; ys2 = [y for _, y in p[2]]  # the arc's quarter points
            cx, cy = (min(xs) + max(xs)) / 2, (min(ys2) + max(ys2)) / 2
            i = steps.index(cross[-1])
            d = abs(cx - orig[i][0]) + abs(cy - orig[i][1])
            best = d if best is None or d < best else best
        res["crossover_step"] = cross[-1]
        res["crossover_off"] = best
bre = finetune(branch_metrics, fork)
res["branch_records"] = len(bre)
res["branch_points"] = len(curve("009e73"))
print(json.dumps(res))
PY

"$MNEME" plot "$R" -o "$TMP/main.svg" >"$TMP/out" 2>"$TMP/err"
ok $([ $? = 0 ] && [ "$(cat "$TMP/out")" = "$TMP/main.svg" ]; echo $?) "plot -o FILE.svg writes it and says where"
$PY "$TMP/svg.py" "$TMP/main.svg" "$R/metrics.jsonl" "$R/branches/lower/metrics.jsonl" 0 >"$TMP/svg.json"
n=$(json "$TMP/svg.json" .records)
ok $([ "$n" -gt 5 ] && [ "$(json "$TMP/svg.json" .new_points)" = "$n" ] && [ "$(json "$TMP/svg.json" .original_points)" = "$n" ]; echo $?) \
   "each task's curve has one point per fine-tuning evaluation ($(cat "$TMP/svg.json" | cut -c1-80))"
ok $([ "$(json "$TMP/svg.json" .x_linear)" = true ] && [ "$(json "$TMP/svg.json" .y_linear)" = true ]; echo $?) \
   "each point sits at its step and its accuracy (one linear map for all)"
cs=$(json "$R/summary.json" .crossover_step)
ok $([ "$(json "$TMP/svg.json" .crossover_step)" = "$cs" ] && lt "$(json "$TMP/svg.json" .crossover_off)" 1; echo $?) \
   "the crossover marker is on the original task's curve at step $cs (off by $(json "$TMP/svg.json" .crossover_off))"
ok $([ "$(json "$TMP/svg.json" .branch_points)" = 0 ]; echo $?) "without --all no branch is drawn"

"$MNEME" plot "$R" --all -o "$TMP/all.svg" >/dev/null 2>"$TMP/err"
$PY "$TMP/svg.py" "$TMP/all.svg" "$R/metrics.jsonl" "$R/branches/lower/metrics.jsonl" 0 >"$TMP/svg.json"
ok $([ "$(json "$TMP/svg.json" .branch_points)" = "$(json "$TMP/svg.json" .branch_records)" ] && [ "$(json "$TMP/svg.json" .branch_points)" -gt 5 ]; echo $?) \
   "--all draws the branch from its fork point, a point per evaluation ($(json "$TMP/svg.json" .branch_points))"
"$MNEME" plot "$R" --branch lower -o "$TMP/one.svg" >/dev/null 2>&1
ok $(cmp -s "$TMP/one.svg" "$TMP/all.svg"; echo $?) "--branch lower draws the same as --all with one branch"

if command -v pdftotext >/dev/null 2>&1; then
    "$MNEME" plot "$R" --all --panels train,drift -o "$TMP/fig.pdf" >/dev/null 2>&1
    ok $(pdfinfo "$TMP/fig.pdf" 2>/dev/null | grep -q "^Pages: *1"; echo $?) "the PDF opens (pdfinfo: one page)"
    pdftotext "$TMP/fig.pdf" "$TMP/fig.txt"
    ok $(grep -q "new task" "$TMP/fig.txt" && grep -q "original task" "$TMP/fig.txt" && grep -q "crossover @$cs" "$TMP/fig.txt"; echo $?) \
       "its legend names both tasks and the crossover @$cs"
    ok $(grep -q "lower @0" "$TMP/fig.txt" && grep -q "training loss" "$TMP/fig.txt" && grep -q "drift from the base" "$TMP/fig.txt" && grep -q "layer.0" "$TMP/fig.txt"; echo $?) \
       "the fork point is labelled, and the training-loss and drift panels are there"
else
    ok 0 "# SKIP pdfinfo and pdftotext are missing (apt-get install poppler-utils)"
fi

# PNG: the size asked, and a picture (many colours), not a blank page
"$MNEME" plot "$R" -o "$TMP/fig.png" --size 640x480 >/dev/null 2>&1
set -- $($PY "$MNEME_SRCDIR/tests/png.py" "$TMP/fig.png" size) \
    $($PY "$MNEME_SRCDIR/tests/png.py" "$TMP/fig.png" distinct-middle)
ok $([ "$1" = 640 ] && [ "$2" = 480 ] && [ "$3" -gt 3 ]; echo $?) "the PNG is 640x480 and not blank ($3 byte values in a middle row)"
"$MNEME" plot "$R" >/dev/null 2>&1
ok $([ -f "$R/plot.png" ]; echo $?) "without -o the figure goes to RUN/plot.png"

# bad input: a clear error, exit 2, nothing left behind
mkdir "$TMP/empty"
"$MNEME" plot "$TMP/empty" -o "$TMP/x.png" 2>"$TMP/err"
ok $([ $? = 2 ] && grep -q "metrics.jsonl" "$TMP/err"; echo $?) "a folder without metrics: exit 2 ($(cat "$TMP/err"))"
"$MNEME" plot "$R" --branch nonesuch -o "$TMP/x.png" 2>"$TMP/err"
ok $([ $? = 2 ] && grep -q "no branch named 'nonesuch'" "$TMP/err"; echo $?) "an unknown branch: exit 2 ($(cat "$TMP/err"))"
"$MNEME" plot "$R" -o "$TMP/nowhere/x.png" 2>"$TMP/err"
ok $([ $? = 2 ] && grep -q "cannot write $TMP/nowhere/x.png" "$TMP/err"; echo $?) "an unwritable path: exit 2 ($(cat "$TMP/err"))"
"$MNEME" plot "$R" -o "$TMP/x.gif" 2>"$TMP/err"
ok $([ $? = 2 ] && grep -q "unknown kind of figure '.gif'" "$TMP/err"; echo $?) "an unknown extension: exit 2 ($(cat "$TMP/err"))"
"$MNEME" plot "$R" --size 10x10 2>"$TMP/err"
ok $([ $? = 2 ] && grep -q "size" "$TMP/err"; echo $?) "a size too small: exit 2"
ok $([ -z "$(ls "$TMP" "$R" | grep '\.tmp\.')" ]; echo $?) "no temporary file is left behind"

# :plot in the workbench: what is on screen, and where it went
if command -v tmux >/dev/null 2>&1; then
    . "$MNEME_SRCDIR/tests/tmux.sh"
    cat >"$TMP/ui.sh" <<SH
"$MNEME" "$CFG" --set finetune.epochs=3000 --out "$TMP/live"
echo "mneme-exit=\$?"
exec sleep 600
SH
    ui_session 120 40 "$TMP/ui.sh"
    wait_until 60 sh -c "head -1 '$TMP/pane' | grep -q 'finetune · step [1-9][0-9]'"
    T send-keys -t ui ":plot $TMP/ws.svg" Enter
    wait_for 30 "plot: wrote $TMP/ws.svg"
    rc=$?
    ok $([ "$rc" = 0 ] && [ -s "$TMP/ws.svg" ]; echo $?) ":plot FILE writes the figure of the live run and says so"
    show_pane_if $rc
    $PY "$TMP/svg.py" "$TMP/ws.svg" "$TMP/live/metrics.jsonl" "$TMP/live/metrics.jsonl" 0 >"$TMP/svg.json"
    ok $([ "$(json "$TMP/svg.json" .new_points)" -ge 2 ]; echo $?) "with the curves so far ($(json "$TMP/svg.json" .new_points) points)"
    T send-keys -t ui ":plot" Enter
    wait_for 30 "plot: wrote $TMP/live/plot-step-"
    ok $(ls "$TMP"/live/plot-step-*.png >/dev/null 2>&1; echo $?) ":plot alone writes RUN/plot-step-N.png"
    T send-keys -t ui ":plot $TMP/x.gif" Enter
    wait_for 30 "error: plot:"
    ok $? ":plot with an unknown extension: the error in the footer"
    T send-keys -t ui q
    wait_for 15 "quit?"
    T send-keys -t ui y
    wait_for 30 "mneme-exit=0"
    ok $? "and the workbench quits as usual"
else
    ok 0 "# SKIP :plot in the workbench needs tmux"
fi
done_testing
