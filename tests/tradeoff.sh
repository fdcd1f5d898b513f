#!/bin/sh
# mneme plot STUDY_DIR: a study's trade-off figure, checked for what it
# shows. Two study.json written by hand (one seed, five remedies with a
# known Pareto front, one below no forgetting; three seeds with sds). The
# SVG is parsed: one filled marker a remedy, at (forgetting, new-task
# accuracy) by one linear map an axis, the experiment as given a square;
# the Pareto line's vertices are the front's markers in order of
# forgetting; error bars only over several seeds, as long as the sds. The
# PDF's text names every remedy and both axes, and no two names overlap;
# the PNG has the size asked; bad input is one clear line, exit 2.
. "$MNEME_SRCDIR/tests/lib.sh"
PY=python3
command -v "$PY" >/dev/null 2>&1 || { echo "1..0 # SKIP python3 is not installed"; exit 0; }

# remedy NAME MAIN PARETO NEW NEW_SD FORGETTING FORGETTING_SD: one entry
# of remedies, with the fields mneme study writes that the figure ignores
remedy() {
    cat <<JSON
    { "name": "$1", "main": $2, "about": "a remedy", "set": [],
      "new_acc": { "mean": $4, "sd": $5, "ci95": 0 },
      "forgetting": { "mean": $6, "sd": $7, "ci95": 0 },
      "original_acc": { "mean": 0.5, "sd": 0, "ci95": 0 },
      "original_min": { "mean": 0.5, "sd": 0, "ci95": 0 },
      "trainable_fraction": 0.5, "time_s": { "mean": 5, "sd": 0, "ci95": 0 },
      "pareto": $3, "differs": { "new_acc": false, "forgetting": false }, "runs": [] }
JSON
}
mkdir "$TMP/one" "$TMP/three"
{
    echo '{ "version": 1, "experiment": "full-ft-aggressive", "seeds": [42], "remedies": ['
    remedy full-ft-aggressive true true 1.0 0 0.50 0; echo ,
    remedy ewc false true 0.95 0 0.10 0; echo ,
    remedy lora-r8 false true 0.90 0 0.02 0; echo ,
    remedy freeze_top false false 0.85 0 0.15 0; echo ,
    remedy replay false true 0.80 0 -0.02 0
    echo '] }'
} >"$TMP/one/study.json"
{
    echo '{ "version": 1, "experiment": "full-ft-gentle", "seeds": [42, 43, 44], "remedies": ['
    remedy full-ft-gentle true true 1.0 0 0.502 0.01; echo ,
    remedy ewc false true 0.94 0.02 0.12 0.03; echo ,
    remedy lora-r8 false true 0.88 0.01 0.05 0.015; echo ,
    remedy l2sp.strong false false 0.86 0.04 0.20 0.05
    echo '] }'
} >"$TMP/three/study.json"
ok $(jq -e '.remedies | length == 5' "$TMP/one/study.json" >/dev/null && jq -e '.remedies | length == 4' "$TMP/three/study.json" >/dev/null; echo $?) \
   "two studies to draw: one seed and five remedies, three seeds and four"

# What the SVG shows: the filled markers of the remedies' colours (the
# default theme's: remedy blue, Pareto front bluish green, main
# vermillion), the Pareto line (the front's colour, drawn with curves)
# and the error bars (a bar and two caps, one path each), checked against
# study.json.
cat >"$TMP/svg.py" <<'PY'
import json, re, sys
svg, study = sys.argv[1], json.load(open(sys.argv[2]))
REMEDY, FRONT, MAIN = "0072b2", "009e73", "d55e00"
def rgb(hexc):
    c = [int(hexc[i:i + 2], 16) / 255 * 100 for i in (0, 2, 4)]
    return "rgb(%s)" % ",".join(("%.6f" % v).rstrip("0").rstrip(".") + "%" for v in c)
colours = {rgb(REMEDY): REMEDY, rgb(FRONT): FRONT, rgb(MAIN): MAIN}
paths = []
for m in re.finditer(r"<path ([^>]*?)/?>", open(svg).read()):
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', m.group(1)))
    # cairo writes a style, or (newer) presentation attributes
    props = dict(kv.split(":", 1) for kv in attrs.get("style", "").replace(" ", "").split(";") if ":" in kv)
    props.update({k: v for k, v in attrs.items() if k in ("fill", "stroke")})
    d = attrs.get("d", "")
    subs = []   # each subpath: its commands, every point, each command's last
    for cmd, args in re.findall(r"([MLCZ])([^MLCZ]*)", d):
        nums = [float(v) for v in args.split()]
        if cmd == "M":
            subs.append({"cmds": "M", "pts": [], "ends": []})
        elif subs:
            subs[-1]["cmds"] += cmd
        pts = list(zip(nums[0::2], nums[1::2]))
        if subs and pts:
            subs[-1]["pts"] += pts
            subs[-1]["ends"].append(pts[-1])
    paths.append((props, d, subs))
def centre(pts):
    xs = [x for x, _ in pts]; ys = [y for _, y in pts]
    return ((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2)
# markers: filled, not stroked, in a remedy's colour
markers = []
for props, d, subs in paths:
    fill = props.get("fill")
    if props.get("stroke", "none") != "none" or fill not in colours or not subs:
        continue
    s = subs[0]
    shape = "circle" if "C" in s["cmds"] else "square" if s["cmds"].startswith("MLLL") else "?"
    markers.append({"shape": shape, "colour": colours[fill], "at": centre(s["pts"])})
rem = study["remedies"]
res = {"remedies": len(rem), "markers": len(markers),
       "squares": sum(m["shape"] == "square" for m in markers),
       "circles": sum(m["shape"] == "circle" for m in markers)}
# markers by x against remedies by forgetting (distinct in the fixtures):
# one increasing linear map for x, one decreasing for y (up the page)
ms = sorted(markers, key=lambda m: m["at"][0])
rs = sorted(rem, key=lambda r: r["forgetting"]["mean"])
if len(ms) == len(rs) >= 2:
    f = [r["forgetting"]["mean"] for r in rs]; n = [r["new_acc"]["mean"] for r in rs]
    X = [m["at"][0] for m in ms]; Y = [m["at"][1] for m in ms]
    a = (X[-1] - X[0]) / (f[-1] - f[0])
    lo = min(range(len(n)), key=lambda i: n[i]); hi = max(range(len(n)), key=lambda i: n[i])
    b = (Y[hi] - Y[lo]) / (n[hi] - n[lo])
    res["x_scale"], res["y_scale"] = a, b
    res["x_linear"] = a > 0 and all(abs(X[0] + a * (v - f[0]) - x) < 0.01 for v, x in zip(f, X))
    res["y_linear"] = b < 0 and all(abs(Y[lo] + b * (v - n[lo]) - y) < 0.01 for v, y in zip(n, Y))
    want = [MAIN if r["main"] else FRONT if r["pareto"] else REMEDY for r in rs]
    res["colours_right"] = [m["colour"] for m in ms] == want
    res["main_is_square"] = all((m["shape"] == "square") == r["main"] for m, r in zip(ms, rs))
    # the Pareto line: the front's colour, stroked, drawn with curves
    lines = [subs for props, d, subs in paths
             if props.get("stroke") == rgb(FRONT) and props.get("fill", "none") == "none"
             and len(subs) == 1 and "C" in subs[0]["cmds"]]
    res["pareto_lines"] = len(lines)
    front = [m["at"] for m, r in zip(ms, rs) if r["pareto"]]
    if len(lines) == 1:
        vs = lines[0][0]["ends"]   # the move, then each curve's end
        res["pareto_vertices"] = len(vs)
        res["pareto_right"] = len(vs) == len(front) and all(
            abs(v[0] - p[0]) < 0.01 and abs(v[1] - p[1]) < 0.01 for v, p in zip(vs, front))
    # error bars: three straight subpaths (the bar, two caps), the bar
    # centred on its remedy's marker, half as long as 2 sd on the page
    bars = [subs for props, d, subs in paths
            if props.get("stroke") in colours and len(subs) == 3 and all(s["cmds"] == "ML" for s in subs)]
    res["bars"] = len(bars)
    res["bars_expected"] = sum((r["forgetting"]["sd"] > 0) + (r["new_acc"]["sd"] > 0) for r in rem)
    matched = 0
    for subs in bars:
        (x0, y0), (x1, y1) = subs[0]["pts"][:2]
        mid = ((x0 + x1) / 2, (y0 + y1) / 2)
        for m, r in zip(ms, rs):
            if abs(mid[0] - m["at"][0]) > 0.01 or abs(mid[1] - m["at"][1]) > 0.01:
                continue
            if abs(y0 - y1) < 1e-6 and abs(abs(x1 - x0) - 2 * r["forgetting"]["sd"] * a) < 0.02:
                matched += 1
            elif abs(x0 - x1) < 1e-6 and abs(abs(y1 - y0) - 2 * r["new_acc"]["sd"] * abs(b)) < 0.02:
                matched += 1
    res["bars_matched"] = matched
print(json.dumps(res))
PY

# one seed
"$MNEME" plot "$TMP/one" -o "$TMP/one.svg" >"$TMP/out" 2>"$TMP/err"
ok $([ $? = 0 ] && [ "$(cat "$TMP/out")" = "$TMP/one.svg" ]; echo $?) "plot STUDY_DIR -o FILE.svg writes it and says where ($(cat "$TMP/err"))"
$PY "$TMP/svg.py" "$TMP/one.svg" "$TMP/one/study.json" >"$TMP/one.json"
diag "$(cat "$TMP/one.json")"
ok $([ "$(json "$TMP/one.json" .markers)" = 5 ] && [ "$(json "$TMP/one.json" .squares)" = 1 ] && [ "$(json "$TMP/one.json" .circles)" = 4 ]; echo $?) \
   "one marker a remedy: four circles and main's square"
ok $([ "$(json "$TMP/one.json" .x_linear)" = true ] && [ "$(json "$TMP/one.json" .y_linear)" = true ]; echo $?) \
   "each marker sits at its remedy's forgetting and new-task accuracy (one linear map an axis, forgetting below 0 too)"
ok $([ "$(json "$TMP/one.json" .main_is_square)" = true ] && [ "$(json "$TMP/one.json" .colours_right)" = true ]; echo $?) \
   "the square is main's, in its own colour; the front's remedies in the accent colour, the others in the remedies'"
ok $([ "$(json "$TMP/one.json" .pareto_lines)" = 1 ] && [ "$(json "$TMP/one.json" .pareto_right)" = true ]; echo $?) \
   "the Pareto line's vertices are the four front remedies' markers in order of forgetting ($(json "$TMP/one.json" .pareto_vertices))"
ok $([ "$(json "$TMP/one.json" .bars)" = 0 ]; echo $?) "one seed: no error bars"

# three seeds
"$MNEME" plot "$TMP/three" -o "$TMP/three.svg" >/dev/null 2>"$TMP/err"
$PY "$TMP/svg.py" "$TMP/three.svg" "$TMP/three/study.json" >"$TMP/three.json"
diag "$(cat "$TMP/three.json")"
ok $([ "$(json "$TMP/three.json" .markers)" = 4 ] && [ "$(json "$TMP/three.json" .x_linear)" = true ] && [ "$(json "$TMP/three.json" .y_linear)" = true ] && [ "$(json "$TMP/three.json" .pareto_right)" = true ]; echo $?) \
   "three seeds: the means' markers, linear, and the front's line through its three"
ok $([ "$(json "$TMP/three.json" .bars)" = 7 ] && [ "$(json "$TMP/three.json" .bars_expected)" = 7 ] && [ "$(json "$TMP/three.json" .bars_matched)" = 7 ]; echo $?) \
   "an error bar for each sd above 0 (7), centred on its marker, 2 sd long on the axes' scale"

if command -v pdftotext >/dev/null 2>&1; then
    "$MNEME" plot "$TMP/one" -o "$TMP/one.pdf" >/dev/null 2>&1
    "$MNEME" plot "$TMP/three" -o "$TMP/three.pdf" >/dev/null 2>&1
    ok $(pdfinfo "$TMP/three.pdf" 2>/dev/null | grep -q "^Pages: *1"; echo $?) "the PDF opens (pdfinfo: one page)"
    pdftotext "$TMP/one.pdf" "$TMP/one.txt"
    pdftotext "$TMP/three.pdf" "$TMP/three.txt"
    missing=
    for r in full-ft-aggressive ewc lora-r8 freeze_top replay; do contains "$TMP/one.txt" "$r" || missing="$missing $r"; done
    for r in full-ft-gentle ewc lora-r8 l2sp.strong; do contains "$TMP/three.txt" "$r" || missing="$missing $r"; done
    ok $([ -z "$missing" ]; echo $?) "the PDFs name every remedy${missing:+ (missing:$missing)}"
    ok $(contains "$TMP/one.txt" "forgetting (original-task accuracy lost)" && contains "$TMP/one.txt" "new-task accuracy" &&
         contains "$TMP/one.txt" "full-ft-aggressive: new task against forgetting" && ! contains "$TMP/one.txt" "seeds"; echo $?) \
       "the axes' titles and the title; one seed says nothing of seeds"
    ok $(contains "$TMP/three.txt" "full-ft-gentle: new task against forgetting" && contains "$TMP/three.txt" "(mean ± sd over 3 seeds)"; echo $?) \
       "three seeds: the title says mean ± sd over 3 seeds"
    # the names' boxes on the page: none over another
    pdftotext -bbox "$TMP/one.pdf" "$TMP/one.html"
    $PY - "$TMP/one.html" full-ft-aggressive ewc lora-r8 freeze_top replay >"$TMP/overlap" <<'PY'
import re, sys
words = re.findall(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>', open(sys.argv[1]).read())
boxes = [tuple(map(float, w[:4])) for w in words if w[4] in sys.argv[2:]]
hit = sum(1 for i in range(len(boxes)) for j in range(i) if
          min(boxes[i][2], boxes[j][2]) > max(boxes[i][0], boxes[j][0]) and min(boxes[i][3], boxes[j][3]) > max(boxes[i][1], boxes[j][1]))
print(len(boxes), hit)
PY
    ok $([ "$(cat "$TMP/overlap")" = "5 0" ]; echo $?) "the five names are apart (names, overlaps: $(cat "$TMP/overlap"))"
else
    ok 0 "# SKIP pdfinfo and pdftotext are missing (apt-get install poppler-utils)"
fi

# PNG: the size asked, and a picture, not a blank page
"$MNEME" plot "$TMP/three" -o "$TMP/three.png" --size 640x480 >/dev/null 2>&1
set -- $($PY "$MNEME_SRCDIR/tests/png.py" "$TMP/three.png" size) \
    $($PY "$MNEME_SRCDIR/tests/png.py" "$TMP/three.png" distinct-middle)
ok $([ "$1" = 640 ] && [ "$2" = 480 ] && [ "$3" -gt 3 ]; echo $?) "the PNG is 640x480 and not blank ($3 byte values in a middle row)"
"$MNEME" plot "$TMP/one" >"$TMP/out" 2>&1
ok $([ -f "$TMP/one/tradeoff.png" ] && [ "$(cat "$TMP/out")" = "$TMP/one/tradeoff.png" ]; echo $?) "without -o the figure goes to STUDY_DIR/tradeoff.png"

# bad input: one clear line naming the file, exit 2, nothing left behind
# bad STUDY_JSON_TEXT: a study folder holding it
bad() {
    rm -rf "$TMP/bad" && mkdir "$TMP/bad" && printf '%s\n' "$1" >"$TMP/bad/study.json"
}
# plot_err [ARG]...: mneme plot's exit status and its stderr, one line
plot_err() {
    "$MNEME" plot "$@" >/dev/null 2>"$TMP/err"
    echo $? "$(wc -l <"$TMP/err")"
}
S=$TMP/bad/study.json
bad '{ "version": 1,
  "experiment": "x",
  "seeds": [42] "remedies": [] }'
ok $([ "$(plot_err "$TMP/bad" -o "$TMP/x.png")" = "2 1" ] && contains "$TMP/err" "$S:3: " && grep -q "expected\|near" "$TMP/err"; echo $?) \
   "not JSON: exit 2, the file and jansson's line ($(cat "$TMP/err"))"
rm -rf "$TMP/bad" && mkdir "$TMP/bad" && ln -s nowhere "$S"
ok $([ "$(plot_err "$TMP/bad" -o "$TMP/x.png")" = "2 1" ] && contains "$TMP/err" "cannot read $S: No such file"; echo $?) \
   "unreadable: exit 2 ($(cat "$TMP/err"))"
bad "$(jq 'del(.remedies[1].forgetting.sd)' "$TMP/one/study.json")"
ok $([ "$(plot_err "$TMP/bad" -o "$TMP/x.png")" = "2 1" ] && contains "$TMP/err" "$S: remedy 'ewc': forgetting.sd is missing"; echo $?) \
   "a missing field names it and the remedy ($(cat "$TMP/err"))"
bad "$(jq '.remedies[3].pareto = "yes"' "$TMP/one/study.json")"
ok $([ "$(plot_err "$TMP/bad" -o "$TMP/x.png")" = "2 1" ] && contains "$TMP/err" "$S: remedy 'freeze_top': pareto should be true or false, not a string"; echo $?) \
   "a field of the wrong type names it and the remedy ($(cat "$TMP/err"))"
bad "$(jq '.remedies[2].new_acc.mean = "0.9"' "$TMP/one/study.json")"
ok $([ "$(plot_err "$TMP/bad" -o "$TMP/x.png")" = "2 1" ] && contains "$TMP/err" "remedy 'lora-r8': new_acc.mean should be a number, not a string"; echo $?) \
   "a mean that is not a number too ($(cat "$TMP/err"))"
bad "$(jq 'del(.remedies[0].name)' "$TMP/one/study.json")"
ok $([ "$(plot_err "$TMP/bad" -o "$TMP/x.png")" = "2 1" ] && contains "$TMP/err" "$S: remedies[0]: name is missing"; echo $?) \
   "a remedy without a name is named by its place ($(cat "$TMP/err"))"
bad "$(jq '.remedies = []' "$TMP/one/study.json")"
ok $([ "$(plot_err "$TMP/bad" -o "$TMP/x.png")" = "2 1" ] && contains "$TMP/err" "$S: no remedies to draw"; echo $?) \
   "zero remedies: exit 2 ($(cat "$TMP/err"))"
ok $([ "$(plot_err "$TMP/one" -o "$TMP/x.gif")" = "2 1" ] && contains "$TMP/err" "unknown kind of figure '.gif'"; echo $?) \
   "an unknown extension: exit 2 ($(cat "$TMP/err"))"
ok $([ "$(plot_err "$TMP/one" -o "$TMP/nowhere/x.png")" = "2 1" ] && contains "$TMP/err" "cannot write $TMP/nowhere/x.png"; echo $?) \
   "an unwritable path: exit 2 ($(cat "$TMP/err"))"
for opt in --all "--branch lower" "--metric loss" "--panels train"; do
    set -- $opt
    plot_err "$TMP/one" $opt >"$TMP/rc"
    head -1 "$TMP/err" >"$TMP/err1"
    ok $([ "$(cut -d' ' -f1 "$TMP/rc")" = 2 ] && contains "$TMP/err1" "$TMP/one is a study (study.json): $1 is for a run's figure"; echo $?) \
       "$1 on a study is an error saying so, exit 2 ($(cat "$TMP/err1"))"
done
: >"$TMP/one/metrics.jsonl"
"$MNEME" plot "$TMP/one" -o "$TMP/x.png" >/dev/null 2>"$TMP/err"
ok $([ $? = 2 ] && contains "$TMP/err" "fine-tuning evaluations"; echo $?) "a folder with metrics.jsonl is a run, study.json or not"
ok $([ -z "$(ls "$TMP" "$TMP/one" "$TMP/three" | grep '\.tmp\.')" ]; echo $?) "no temporary file is left behind"
done_testing
