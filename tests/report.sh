#!/bin/sh
# mneme report: one self-contained HTML page, checked for what it holds
# (the figure inline, the summary's figures, every event, the experiment
# and the policy source) and for what it must not (scripts, anything from
# elsewhere); then opened in headless Chromium, whose screenshot must show
# the figure's curves.
. "$MNEME_SRCDIR/tests/lib.sh"
CFG="$MNEME_SRCDIR/tests/data/tiny.cfg"
PY=python3
command -v "$PY" >/dev/null 2>&1 || { echo "1..0 # SKIP python3 is not installed"; exit 0; }
R=$TMP/run
"$MNEME" run --headless "$CFG" --out "$R" --quiet --set finetune.epochs=6 \
    --set finetune.policy="$MNEME_SRCDIR/lua/policies/gradual_unfreeze.lua" >/dev/null 2>&1
"$MNEME" fork "$R" --at 0 --name lower --set finetune.lr=1e-4 --quiet >/dev/null 2>&1
ok $([ -s "$R/events.jsonl" ] && [ -f "$R/branches/lower/summary.json" ]; echo $?) \
   "a run with a policy's changes and a branch"

"$MNEME" report "$R" -o "$TMP/report.html" >"$TMP/out" 2>"$TMP/err"
ok $([ $? = 0 ] && [ "$(cat "$TMP/out")" = "$TMP/report.html" ]; echo $?) "report -o FILE writes it and says where"

cat >"$TMP/check.py" <<'PY'
import html.parser, json, re, sys
page, run = sys.argv[1], sys.argv[2]
text = open(page, encoding="utf-8").read()
class P(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.outside, self.table, self.rows, self.cells = [], [], None, {}, []
        self.in_td = False
    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for k, v in attrs:
            if k in ("src", "href", "xlink:href") and v and not v.startswith("#"):
                self.outside.append(v)
        if tag == "table":
            self.table = dict(attrs).get("id") or dict(attrs).get("class")
            self.rows.setdefault(self.table, [])
        if tag == "tr" and self.table:
            self.rows[self.table].append([])
        if tag in ("td", "th"):
            self.in_td = True
    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.in_td = False
        if tag == "table":
            self.table = None
    def handle_data(self, d):
        if self.in_td and self.table and self.rows[self.table]:
            self.rows[self.table][-1].append(d.strip())
p = P()
p.feed(text)
summary = json.load(open(run + "/summary.json"))
events = [json.loads(l) for l in open(run + "/events.jsonl") if l.strip()]
srow = {r[0]: r[1] for r in p.rows.get("summary", []) if len(r) >= 2}
res = {
    "svg": p.tags.count("svg"),
    "paths": p.tags.count("path"),
    "scripts": p.tags.count("script") + p.tags.count("iframe") + p.tags.count("link") + p.tags.count("img"),
    "outside": p.outside,
    "css_outside": len(re.findall(r"url\((?!#)|@import", text)),
    "forgetting": srow.get("forgetting (baseline − final original)") == "%.3f" % summary["forgetting"],
    "final_new": srow.get("new task, final") == "%.3f" % summary["final"]["new"]["acc"],
    "events": len(p.rows.get("events", [])) - 1,
    "events_file": len(events),
    "event_steps": [r[0] for r in p.rows.get("events", [])[1:]] == [str(e["step"]) for e in events],
    "branch_row": any(r and r[0] == "lower" for r in p.rows.get("grid", [])),
    "experiment": 'name = "tiny"' in text.replace("&quot;", '"'),
    "policy": "policy/0.lua" in text and "gradual" in text,
}
print(json.dumps(res))
PY
$PY "$TMP/check.py" "$TMP/report.html" "$R" >"$TMP/c.json"
ok $([ "$(json "$TMP/c.json" .svg)" = 1 ] && [ "$(json "$TMP/c.json" .paths)" -gt 20 ]; echo $?) \
   "the figure is inline, as SVG ($(json "$TMP/c.json" .paths) paths)"
ok $([ "$(json "$TMP/c.json" .scripts)" = 0 ] && [ "$(json "$TMP/c.json" '.outside|length')" = 0 ] && [ "$(json "$TMP/c.json" .css_outside)" = 0 ]; echo $?) \
   "no script, no link, no image, nothing fetched from elsewhere ($(jq -c .outside "$TMP/c.json"))"
ok $([ "$(json "$TMP/c.json" .forgetting)" = true ] && [ "$(json "$TMP/c.json" .final_new)" = true ]; echo $?) \
   "the summary table holds summary.json's forgetting and final accuracy"
ok $([ "$(json "$TMP/c.json" .events)" = "$(json "$TMP/c.json" .events_file)" ] && [ "$(json "$TMP/c.json" .events)" -gt 0 ] && [ "$(json "$TMP/c.json" .event_steps)" = true ]; echo $?) \
   "every event of events.jsonl is a row, at its step ($(json "$TMP/c.json" .events))"
ok $([ "$(json "$TMP/c.json" .branch_row)" = true ]; echo $?) "the branch is in the branches table"
ok $([ "$(json "$TMP/c.json" .experiment)" = true ] && [ "$(json "$TMP/c.json" .policy)" = true ]; echo $?) \
   "the experiment as run and the policy source are there"
"$MNEME" report "$R" >/dev/null 2>&1
ok $([ -f "$R/report.html" ]; echo $?) "without -o the page goes to RUN/report.html"
mkdir "$TMP/empty"
"$MNEME" report "$TMP/empty" 2>"$TMP/err"
ok $([ $? = 2 ] && grep -q "metrics.jsonl" "$TMP/err"; echo $?) "a folder with no run: exit 2 ($(cat "$TMP/err"))"
"$MNEME" report "$R" -o "$TMP/nowhere/r.html" 2>"$TMP/err"
ok $([ $? = 2 ] && grep -q "cannot write" "$TMP/err" && [ -z "$(ls "$TMP" | grep '\.tmp\.')" ]; echo $?) \
   "an unwritable path: exit 2, nothing left behind"

# a real browser: the screenshot shows the curves
BROWSER=$(command -v chromium || command -v chromium-browser || true)
if [ -n "$BROWSER" ]; then
    timeout 120 "$BROWSER" --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --user-data-dir="$TMP/chromium" --window-size=1280,1100 \
        --screenshot="$TMP/shot.png" "file://$TMP/report.html" >/dev/null 2>&1
    set -- $($PY "$MNEME_SRCDIR/tests/png.py" "$TMP/shot.png" size 2>/dev/null) \
        $($PY "$MNEME_SRCDIR/tests/png.py" "$TMP/shot.png" near 0072b2 d55e00 2>/dev/null)
    ok $([ "${3:-0}" -gt 300 ] && [ "${4:-0}" -gt 300 ]; echo $?) \
       "Chromium renders the page with the figure: ${3:-?} pixels of the new task's blue, ${4:-?} of the original's orange (${1:-?}x${2:-?})"
else
    ok 0 "# SKIP Chromium is not installed (apt-get install chromium)"
fi
done_testing
