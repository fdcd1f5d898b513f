#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "tap.h"

static char dir[PATH_MAX];   /* the mkdtemp folder, as realpath sees it */
static MnError e;

static const char *in_dir(const char *name)
{
    static char path[4][PATH_MAX + 64];
    static int turn;
    char *p = path[turn++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", dir, name);
    return p;
}

static const char *put(const char *name, const char *text)
{
    const char *p = in_dir(name);
    FILE *f = fopen(p, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        diag("cannot write %s", p);
        exit(2);
    }
    return p;
}

#define TASKS "original = { builtin = \"sentiment\"; };\nnew = { builtin = \"topic\"; };\n"

static int load(const char *text, const char *const *sets, int n, Experiment *x)
{
    e.msg[0] = '\0';
    return experiment_load(x, put("exp.cfg", text), sets, n, &e);
}

/* Every error must say where (file:line or --set), which key, and what. */
static void expect_error(const char *what_for, const char *text, const char *const *sets,
                         int n, const char *at, const char *key, const char *what)
{
    Experiment x;
    int rc = load(text, sets, n, &x);
    ok(rc == -1 && strstr(e.msg, at) && strstr(e.msg, key) && strstr(e.msg, what),
       "%s: %s", what_for, e.msg);
}

#define ERR(what_for, text, at, key, what) expect_error(what_for, text, NULL, 0, at, key, what)
#define SET1(a) ((const char *const[]){ a })

static void test_syntax(void)
{
    ERR("syntax error", TASKS "finetune = { lr = ; };\n", "exp.cfg:3:", "", "syntax error");
    put("inc.cfg", "model = {\n  hidden = ;\n};\n");
    ERR("syntax error in an include", TASKS "@include \"inc.cfg\"\n", "inc.cfg:2:", "",
        "syntax error");
    Experiment x;
    e.msg[0] = '\0';
    ok(experiment_load(&x, in_dir("absent.cfg"), NULL, 0, &e) == -1 &&
       strstr(e.msg, "absent.cfg: cannot read"), "missing experiment file: %s", e.msg);
}

static void test_unknown(void)
{
    Experiment x;
    ERR("unknown key", TASKS "model = { hidden = 64; colour = 3; };\n", "exp.cfg:3:",
        "model.colour", "unknown key");
    ok(!strstr(e.msg, "did you mean"), "no far-fetched suggestion");
    ERR("unknown key with a suggestion", TASKS "finetune = {\n  epochs = 2;\n  lt = 1e-5;\n};\n",
        "exp.cfg:5:", "finetune.lt", "did you mean finetune.lr?");
    ERR("transposed letters", TASKS "model = { layesr = 2; };\n", "exp.cfg:3:", "model.layesr",
        "did you mean model.layers?");
    ERR("a key in the wrong group", TASKS "lr = 1e-5;\n", "exp.cfg:3:", "lr",
        "did you mean finetune.lr?");
    ERR("unknown group", TASKS "halt = { patience = 5; };\n", "exp.cfg:3:", "halt",
        "unknown group");
    ERR("unknown nested group", TASKS "finetune = {\n  adapters = { r = 8; };\n};\n", "exp.cfg:4:",
        "finetune.adapters", "unknown group");
    ERR("misspelt group", TASKS "modle = { hidden = 64; };\n", "exp.cfg:3:", "modle",
        "did you mean model?");
    ok(load(TASKS "model = {};\neval = {};\n", NULL, 0, &x) == 0, "empty groups are fine (%s)",
       e.msg);
}

static void test_types(void)
{
    ERR("string for a number", TASKS "finetune = { lr = \"fast\"; };\n", "exp.cfg:3:",
        "finetune.lr", "expected a number, got a string");
    ERR("float for an integer", TASKS "finetune = { epochs = 2.5; };\n", "exp.cfg:3:",
        "finetune.epochs", "expected an integer, got 2.5");
    ERR("number for a string", TASKS "finetune = { schedule = 3; };\n", "exp.cfg:3:",
        "finetune.schedule", "expected a string");
    ERR("boolean for a number", TASKS "seed = true;\n", "exp.cfg:3:", "seed",
        "expected an integer, got true");
    ERR("number for a boolean", TASKS "policy = { watch = 1; };\n", "exp.cfg:3:",
        "policy.watch", "expected true or false, got 1");
    ERR("array for a number", TASKS "eval = { every = [1, 2]; };\n", "exp.cfg:3:", "eval.every",
        "expected an integer, got an array");
    ERR("group for a key", TASKS "seed = { x = 1; };\n", "exp.cfg:3:", "seed",
        "expected an integer, got a group");
    ERR("key for a group", TASKS "model = 5;\n", "exp.cfg:3:", "model",
        "expected a group");
    ERR("value not among the choices", TASKS "finetune = { schedule = \"step\"; };\n",
        "exp.cfg:3:", "finetune.schedule", "expected constant, linear, cosine or slanted_triangular, got \"step\"");
    ERR("an unknown method", TASKS "finetune = { method = \"adapter\"; };\n", "exp.cfg:3:",
        "finetune.method", "expected full, lora, prompt or prefix");
    ERR("bad name", TASKS "name = \"a/b\";\n", "exp.cfg:3:", "name", "no '/'");
}

static void test_ranges(void)
{
    Experiment x;
    ERR("out of range", TASKS "model = { max_len = 0; };\n", "exp.cfg:3:", "model.max_len",
        "expected 2..512, got 0");
    ERR("float out of range", TASKS "finetune = { weight_decay = -0.5; };\n", "exp.cfg:3:",
        "finetune.weight_decay", "expected 0..1, got -0.5");
    ERR("no upper bound", TASKS "eval = { every = 0; };\n", "exp.cfg:3:", "eval.every",
        "expected an integer >= 1, got 0");
    ERR("huge int is refused, not wrapped", TASKS "model = { layers = 3000000000; };\n",
        "exp.cfg:3:", "model.layers", "got 3000000000");
    ERR("huge int that wraps into range", TASKS "threads = 4294967297;\n", "exp.cfg:3:",
        "threads", "got 4294967297");
    ERR("wrap on a line with a same-named key", TASKS
        "eval = { every = 64; batch = 4294967360; }; checkpoint = { every = 5; };\n",
        "exp.cfg:3:", "eval.batch", "got 4294967360");
    ERR("beyond 64 bits", TASKS "seed = 99999999999999999999;\n", "exp.cfg:3:", "seed",
        "beyond 64 bits");
    ERR("negative seed", TASKS "seed = -1;\n", "exp.cfg:3:", "seed", "expected an integer >= 0");
    /* past INT_MAX, ">= 0" would not say what is wrong */
    ERR("an oversized checkpoint.every names the real bound", TASKS
        "checkpoint = { every = 3000000000; };\n", "exp.cfg:3:", "checkpoint.every",
        "expected 0..2147483647, got 3000000000");
    ERR("a negative checkpoint.every", TASKS "checkpoint = { every = -1; };\n", "exp.cfg:3:",
        "checkpoint.every", "expected an integer >= 0, got -1");
    /* the model's own range, not the most layers a model may have */
    ERR("layer.-1 on a 1-layer model", TASKS "model = { layers = 1; };\n"
        "finetune = { freeze = { parts = \"layer.-1\"; }; };\n", "exp.cfg:4:",
        "finetune.freeze.parts", "layer.-1: expected layers within 0..0");
    ERR("layer.70 on a 2-layer model", TASKS "finetune = { freeze = { parts = \"layer.70\"; }; };\n",
        "exp.cfg:3:", "finetune.freeze.parts", "layer.70: expected layers within 0..1");
    expect_error("--set layer.-1 on a 1-layer model", TASKS "model = { layers = 1; };\n",
                 SET1("finetune.freeze.parts=layer.-1"), 1, "--set finetune.freeze.parts",
                 "finetune.freeze.parts", "within 0..0");
    /* the name goes into summary.json, which holds UTF-8 only */
    ERR("a name that is not UTF-8", TASKS "name = \"caf\xe9\";\n", "exp.cfg:3:", "name",
        "expected UTF-8 text, got byte 0xE9 at offset 3");
    expect_error("--set a name that is not UTF-8", TASKS, SET1("name=caf\xe9"), 1, "--set name:",
                 "name", "expected UTF-8 text");
    ok(load(TASKS "seed = 3000000000;\n", NULL, 0, &x) == 0 && x.seed == 3000000000ULL,
       "a bare 3000000000 is a fine 64-bit seed (%s)", e.msg);
    ok(load(TASKS "seed = 9000000000000000000L;\n", NULL, 0, &x) == 0 &&
       x.seed == 9000000000000000000ULL, "an L seed (%s)", e.msg);
    ok(load(TASKS "finetune = { lr = 1; clip_norm = 5; };\nbase = { pretrain = { lr = 0; }; };\n",
            NULL, 0, &x) == 0 && x.finetune.recipe.lr == 1.0 &&
       x.finetune.recipe.clip_norm == 5.0 && x.base.pretrain.lr == 0.0,
       "an int is accepted for a float key (%s)", e.msg);
}

static void test_consistency(void)
{
    put("a.tsv", "x\ty\n");
    put("b.tsv", "x\ty\n");
    ERR("hidden not a multiple of heads", TASKS "model = {\n  hidden = 64;\n  heads = 3;\n};\n",
        "exp.cfg:5:", "model.heads", "must be a multiple of model.heads");
    ERR("a task with both kinds",
        "original = { builtin = \"sentiment\"; };\n"
        "new = {\n  builtin = \"topic\";\n  train = \"a.tsv\";\n  eval = \"b.tsv\";\n};\n",
        "exp.cfg:3:", "new.builtin", "not both");
    ERR("a task with neither",
        "original = { builtin = \"sentiment\"; };\nnew = { train_size = 10; };\n",
        "exp.cfg:2:", "new", "expected builtin, or train and eval");
    ERR("train without eval",
        "original = {\n  train = \"a.tsv\";\n};\nnew = { builtin = \"topic\"; };\n",
        "exp.cfg:2:", "original.train", "original.eval is missing");
    ERR("a missing task", "original = { builtin = \"sentiment\"; };\n", "exp.cfg: ", "new",
        "missing");
    ERR("unknown builtin",
        "original = { builtin = \"sentiment\"; };\nnew = { builtin = \"weather\"; };\n",
        "exp.cfg:2:", "new.builtin", "unknown built-in task \"weather\"; known: sentiment, topic");

    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "cannot read %s/data/none.tsv", dir);
    ERR("unreadable train file",
        "original = { builtin = \"sentiment\"; };\n"
        "new = {\n  train = \"data/none.tsv\";\n  eval = \"b.tsv\";\n};\n",
        "exp.cfg:3:", "new.train", want);
    snprintf(want, sizeof want, "cannot read %s: is a directory", dir);
    ERR("a folder for an eval file",
        "original = { builtin = \"sentiment\"; };\n"
        "new = { train = \"a.tsv\";\n  eval = \".\"; };\n",
        "exp.cfg:3:", "new.eval", "is a directory");
    snprintf(want, sizeof want, "cannot read %s/base.safetensors", dir);
    ERR("unreadable base checkpoint", TASKS "base = {\n  checkpoint = \"base.safetensors\";\n};\n",
        "exp.cfg:4:", "base.checkpoint", want);
}

static void test_set(void)
{
    Experiment x;
    expect_error("bad --set key", TASKS, SET1("finetune.lt=1e-5"), 1, "--set finetune.lt:",
                 "finetune.lt", "did you mean finetune.lr?");
    expect_error("--set of a group", TASKS, SET1("model=3"), 1, "--set model:", "model",
                 "is a group; set one of its keys, e.g. model.hidden");
    expect_error("--set without =", TASKS, SET1("finetune.lr"), 1, "--set finetune.lr:",
                 "finetune.lr", "expected KEY=VALUE");
    expect_error("bad --set value", TASKS, SET1("finetune.lr=fast"), 1, "--set finetune.lr:",
                 "finetune.lr", "expected a number, got a string (\"fast\")");
    expect_error("--set out of range", TASKS, SET1("finetune.epochs=0"), 1,
                 "--set finetune.epochs:", "finetune.epochs", "expected 1..100000, got 0");
    expect_error("--set huge int", TASKS, SET1("model.layers=4294967298"), 1,
                 "--set model.layers:", "model.layers", "got 4294967298");
    expect_error("--set array for a number", TASKS, SET1("finetune.lr=[0, 1]"), 1,
                 "--set finetune.lr:", "finetune.lr", "expected a number, got an array");
    expect_error("--set unparsable value", TASKS, SET1("finetune.lr=[0, 1"), 1,
                 "--set finetune.lr:", "finetune.lr", "cannot read value [0, 1");
    expect_error("--set quoted method", TASKS, SET1("finetune.method=\"adapter\""), 1,
                 "--set finetune.method:", "finetune.method", "expected full, lora, prompt or prefix");
    expect_error("--set bad choice", TASKS, SET1("finetune.schedule=cosin"), 1,
                 "--set finetune.schedule:", "finetune.schedule", "constant, linear, cosine or slanted_triangular");
    expect_error("--set breaking consistency", TASKS, SET1("model.heads=3"), 1,
                 "--set model.heads:", "model.heads", "multiple");

    const char *const sets[] = { "finetune.schedule=cosine", "finetune.lr = 1e-5",
                                 "base.pretrain.schedule=\"constant\"", "name=42",
                                 "finetune.lr=2e-5", "seed=7" };
    ok(load(TASKS, sets, 6, &x) == 0 && strcmp(x.finetune.recipe.schedule, "cosine") == 0 &&
       strcmp(x.base.pretrain.schedule, "constant") == 0 && strcmp(x.name, "42") == 0 &&
       x.finetune.recipe.lr == 2e-5 && x.seed == 7,
       "--set: bare word, quoted string, unquoted string key, later wins (%s)", e.msg);

    const char *const create[] = { "new.builtin=topic", "eval.every=10" };
    ok(load("original = { builtin = \"sentiment\"; };\n", create, 2, &x) == 0 &&
       strcmp(x.new_task.builtin, "topic") == 0 && x.eval.every == 10,
       "--set creates missing groups (%s)", e.msg);

    ok(load(TASKS, NULL, 0, &x) == 0, "loads");
    Experiment before = x;
    e.msg[0] = '\0';
    ok(experiment_set(&x, "finetune.lr=3e-5", &e) == 0 && x.finetune.recipe.lr == 3e-5,
       "experiment_set changes a key (%s)", e.msg);
    ok(experiment_set(&x, "model.heads=3", &e) == -1 && strstr(e.msg, "--set model.heads:") &&
       x.model.heads == before.model.heads, "a refused experiment_set leaves x as it was: %s",
       e.msg);
    ok(experiment_set(&x, "finetune.lt=1", &e) == -1 && strstr(e.msg, "did you mean finetune.lr?"),
       "experiment_set: unknown key: %s", e.msg);
}

static void test_defaults(void)
{
    Experiment x;
    e.msg[0] = '\0';
    int rc = experiment_load(&x, put("demo.cfg", TASKS), NULL, 0, &e);
    ok(rc == 0, "minimal file loads (%s)", e.msg);
    ok(strcmp(x.name, "demo") == 0, "name defaults to the file name (%s)", x.name);
    ok(x.seed == 42 && x.threads == 0, "seed and threads");
    ok(x.model.hidden == 64 && x.model.layers == 2 && x.model.heads == 2 &&
       x.model.intermediate == 256 && x.model.max_len == 64 &&
       strcmp(x.model.tokenizer, "bytes") == 0 && x.model.init_std == 0.02, "model defaults");
    ok(x.original.train_size == 2000 && x.original.eval_size == 500 &&
       x.new_task.train_size == 2000 && x.new_task.eval_size == 500 &&
       !x.original.train[0] && !x.new_task.eval[0], "task defaults");
    const TrainRecipe *p = &x.base.pretrain, *f = &x.finetune.recipe;
    ok(!x.base.checkpoint[0] && p->epochs == 3 && p->lr == 1e-3 && p->batch == 32 &&
       p->warmup_steps == 0 && strcmp(p->schedule, "linear") == 0 && p->weight_decay == 0.01 &&
       p->clip_norm == 1.0, "pretrain defaults");
    ok(f->epochs == 3 && f->lr == 1e-4 && f->batch == 32 && f->warmup_steps == 0 &&
       strcmp(f->schedule, "linear") == 0 && f->weight_decay == 0.01 && f->clip_norm == 1.0 &&
       strcmp(x.finetune.method, "full") == 0, "finetune defaults");
    ok(x.eval.every == 50 && x.eval.original_samples == 0 && x.eval.new_samples == 0 &&
       x.eval.batch == 64 && x.checkpoint.every == 0 && x.checkpoint.keep == 3,
       "eval and checkpoint defaults");
    char want[PATH_MAX + 16];
    snprintf(want, sizeof want, "%s/demo.cfg", dir);
    ok(strcmp(x.path, want) == 0 && strcmp(x.dir, dir) == 0, "path and dir are absolute");

    Experiment d;
    experiment_defaults(&d);
    ok(d.model.hidden == 64 && d.finetune.recipe.lr == 1e-4 && !d.path[0],
       "experiment_defaults without a file");
}

static void test_keys(void)
{
    const ExperimentKeyInfo *k = experiment_keys();
    int n = 0, unique = 1, documented = 1, lr = 0, sched = 0;
    for (; k[n].key; n++) {
        for (int j = 0; j < n; j++)
            unique &= strcmp(k[j].key, k[n].key) != 0;
        documented &= k[n].type && k[n].def && k[n].help && k[n].help[0];
        lr |= strcmp(k[n].key, "finetune.lr") == 0 && strcmp(k[n].type, "float") == 0 &&
              strcmp(k[n].def, "1e-4") == 0;
        sched |= strcmp(k[n].key, "finetune.schedule") == 0 &&
                 strcmp(k[n].type, "constant|linear|cosine|slanted_triangular") == 0;
    }
    ok(n >= 42 && unique && documented, "experiment_keys: %d documented keys, none twice", n);
    ok(lr && sched, "key info gives type, default and choices");
}

/* ui.theme: a shipped theme's name or a readable path; where the theme
 * is missing, the error names the file, the line and the key. */
static void test_theme(void)
{
    Experiment x;
    ok(load(TASKS, NULL, 0, &x) == 0 && strcmp(x.ui.theme, "default") == 0,
       "ui.theme defaults to \"default\" (%s)", x.ui.theme);
    ok(load(TASKS "ui = { theme = \"light\"; };\n", NULL, 0, &x) == 0 &&
       strcmp(x.ui.theme, "light") == 0, "ui.theme = \"light\" loads (%s)", e.msg);
    ok(load(TASKS, SET1("ui.theme=mono"), 1, &x) == 0 && strcmp(x.ui.theme, "mono") == 0,
       "--set ui.theme=mono (%s)", e.msg);
    ERR("an unknown theme", TASKS "ui = {\n  theme = \"neon\";\n};\n", "exp.cfg:4:", "ui.theme",
        "no theme named \"neon\" (looked for themes/neon.theme");
    expect_error("--set an unknown theme", TASKS, SET1("ui.theme=neon"), 1, "--set ui.theme:",
                 "ui.theme", "no theme named \"neon\"");
    ERR("a theme path that is not there", TASKS "ui = { theme = \"/nonexistent/x.theme\"; };\n",
        "exp.cfg:3:", "ui.theme", "cannot read theme file /nonexistent/x.theme");
    const char *mine = put("mine.theme", "new = { fg = \"red\"; };\n");
    char set[PATH_MAX + 64];
    snprintf(set, sizeof set, "ui.theme=\"%s\"", mine);
    ok(load(TASKS, SET1(set), 1, &x) == 0 && strcmp(x.ui.theme, mine) == 0,
       "ui.theme: a path to a theme file (%s)", e.msg);
    ERR("a theme that is not a string", TASKS "ui = { theme = 3; };\n", "exp.cfg:3:", "ui.theme",
        "expected a string");
}

/* Every field but path and dir (where the file was read from). */
static int same_task(const TaskSource *a, const TaskSource *b)
{
    return strcmp(a->builtin, b->builtin) == 0 && strcmp(a->train, b->train) == 0 &&
           strcmp(a->eval, b->eval) == 0 && a->train_size == b->train_size &&
           a->eval_size == b->eval_size && a->columns == b->columns &&
           strcmp(a->format, b->format) == 0 && strcmp(a->text_field, b->text_field) == 0 &&
           strcmp(a->text_b_field, b->text_b_field) == 0 &&
           strcmp(a->label_field, b->label_field) == 0;
}

static int same_recipe(const TrainRecipe *a, const TrainRecipe *b)
{
    return a->epochs == b->epochs && a->lr == b->lr && a->batch == b->batch &&
           a->warmup_steps == b->warmup_steps && strcmp(a->schedule, b->schedule) == 0 &&
           a->weight_decay == b->weight_decay && a->clip_norm == b->clip_norm;
}

static int same(const Experiment *a, const Experiment *b)
{
    return strcmp(a->name, b->name) == 0 && a->seed == b->seed && a->threads == b->threads &&
           a->model.hidden == b->model.hidden && a->model.layers == b->model.layers &&
           a->model.heads == b->model.heads && a->model.intermediate == b->model.intermediate &&
           a->model.max_len == b->model.max_len &&
           strcmp(a->model.tokenizer, b->model.tokenizer) == 0 &&
           a->model.init_std == b->model.init_std && same_task(&a->original, &b->original) &&
           same_task(&a->new_task, &b->new_task) &&
           strcmp(a->base.checkpoint, b->base.checkpoint) == 0 &&
           same_recipe(&a->base.pretrain, &b->base.pretrain) &&
           same_recipe(&a->finetune.recipe, &b->finetune.recipe) &&
           strcmp(a->finetune.method, b->finetune.method) == 0 &&
           a->eval.every == b->eval.every && a->eval.original_samples == b->eval.original_samples &&
           a->eval.new_samples == b->eval.new_samples && a->eval.batch == b->eval.batch &&
           a->checkpoint.every == b->checkpoint.every && a->checkpoint.keep == b->checkpoint.keep;
}

static int count_entries(const char *folder)
{
    DIR *d = opendir(folder);
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d));)
        n += de->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static void test_round_trip(void)
{
    mkdir(in_dir("rt"), 0755);
    mkdir(in_dir("rt/data"), 0755);
    mkdir(in_dir("out"), 0755);
    put("rt/data/o.tsv", "x\ty\n");
    put("rt/data/o eval \"q\".tsv", "x\ty\n");
    put("rt/base.safetensors", "");
    put("rt/exp.cfg",
        "name = \"odd \\\"name\\\" \\\\ x\";\nseed = 3000000000;\nthreads = 3;\n"
        "model = { hidden = 96; layers = 3; heads = 6; intermediate = 100; max_len = 33;\n"
        "          init_std = 0.30000000000000004; };\n"
        "original = { train = \"data/o.tsv\"; eval = \"data/o eval \\\"q\\\".tsv\"; };\n"
        "new = { builtin = \"topic\"; train_size = 7; eval_size = 9; };\n"
        "base = { checkpoint = \"base.safetensors\";\n"
        "  pretrain = { epochs = 5; lr = 0.1; batch = 8; warmup_steps = 11;\n"
        "               schedule = \"cosine\"; weight_decay = 0.3333333333333333; clip_norm = 0; }; };\n"
        "finetune = { epochs = 4; lr = 1e-5; batch = 3; warmup_steps = 100;\n"
        "             schedule = \"constant\"; weight_decay = 1e-300; clip_norm = 123456789.125; };\n"
        "eval = { every = 7; original_samples = 128; new_samples = 64; batch = 5; };\n"
        "checkpoint = { every = 500; keep = 9; };\n");
    Experiment a, b;
    e.msg[0] = '\0';
    int rc = experiment_load(&a, in_dir("rt/exp.cfg"), NULL, 0, &e);
    ok(rc == 0, "every key set loads (%s)", e.msg);
    const char *out = in_dir("out/experiment.cfg");
    rc = experiment_write(&a, out, &e) == 0 && experiment_write(&a, out, &e) == 0;
    ok(rc, "experiment_write, twice over the same file (%s)", e.msg);
    ok(count_entries(in_dir("out")) == 1, "no temporary file left behind");
    rc = experiment_load(&b, out, NULL, 0, &e);
    ok(rc == 0, "the written file loads (%s)", e.msg);
    ok(rc == 0 && same(&a, &b), "write -> load gives the same experiment");
    ok(b.seed == 3000000000ULL && b.model.init_std == 0.30000000000000004 &&
       b.finetune.recipe.weight_decay == 1e-300, "exact seeds and floats");

    Experiment d, d2;
    rc = experiment_load(&d, put("plain.cfg", TASKS), NULL, 0, &e);
    rc = rc == 0 && experiment_write(&d, out, &e) == 0 &&
         experiment_load(&d2, out, NULL, 0, &e) == 0;
    ok(rc && same(&d, &d2), "defaults round-trip too (%s)", e.msg);

    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s/rt/data/o.tsv", dir);
    ok(strcmp(a.original.train, want) == 0, "relative path resolves against the file's folder: %s",
       a.original.train);
    snprintf(want, sizeof want, "%s/rt/base.safetensors", dir);
    ok(strcmp(b.base.checkpoint, want) == 0, "written paths are absolute: %s", b.base.checkpoint);
}

/* Data format keys: defaults, round trip, and the ones that would be
 * silently ignored. */
static void test_data_formats(void)
{
    Experiment x, y;
    ok(load(TASKS, NULL, 0, &x) == 0 && x.original.columns == 2 &&
       strcmp(x.original.format, "auto") == 0 && strcmp(x.new_task.text_field, "text") == 0 &&
       x.new_task.text_b_field[0] == '\0' && strcmp(x.new_task.label_field, "label") == 0,
       "format defaults: 2 columns, auto, text, no text_b, label (%s)", e.msg);

    put("p.train.tsv", "a\tb\ty\n");
    put("p.eval.tsv", "a\tb\ty\n");
    put("p.train.jsonl", "{}\n");
    put("p.eval.jsonl", "{}\n");
    put("p.train.txt", "{}\n");
    const char *cfg =
        "original = {\n  train = \"p.train.jsonl\";\n  eval = \"p.eval.jsonl\";\n"
        "  text_field = \"premise\";\n  text_b_field = \"hypothesis\";\n"
        "  label_field = \"gold\";\n};\n"
        "new = {\n  train = \"p.train.tsv\";\n  eval = \"p.eval.tsv\";\n  columns = 3;\n"
        "  format = \"tsv\";\n};\n";
    int rc = load(cfg, NULL, 0, &x);
    ok(rc == 0 && strcmp(x.original.text_b_field, "hypothesis") == 0 &&
       strcmp(x.original.label_field, "gold") == 0 && x.new_task.columns == 3 &&
       strcmp(x.new_task.format, "tsv") == 0, "JSONL pair fields and a 3-column TSV (%s)", e.msg);
    const char *out = in_dir("fmt-written.cfg");
    rc = rc == 0 && experiment_write(&x, out, &e) == 0 &&
         experiment_load(&y, out, NULL, 0, &e) == 0;
    ok(rc && same(&x, &y), "format keys round-trip through experiment_write (%s)", e.msg);

    DataFormat f;
    task_source_format(&x.original, &f);
    ok(f.kind == DATA_AUTO && strcmp(f.text_field, "premise") == 0 &&
       data_file_kind(&f, x.original.train) == DATA_JSONL && data_file_pairs(&f, x.original.train),
       "task_source_format: auto, JSONL by extension, pairs");
    task_source_format(&x.new_task, &f);
    ok(f.kind == DATA_TSV && f.columns == 3 && data_file_pairs(&f, "p.train.jsonl") == 1,
       "format = tsv wins over the extension");

    ok(load("original = { train = \"p.train.txt\"; eval = \"p.eval.jsonl\";\n"
            "  format = \"jsonl\"; };\nnew = { builtin = \"topic\"; };\n", NULL, 0, &x) == 0,
       "format = jsonl for a file of another name (%s)", e.msg);
    ok(load(TASKS, SET1("new.format=\"jsonl\""), 1, &x) == -1 &&
       strstr(e.msg, "--set new.format") && strstr(e.msg, "only used with train and eval files; this task is built-in"),
       "--set a format on a built-in task: %s", e.msg);

    ERR("a bad format", "original = {\n  builtin = \"sentiment\";\n  format = \"csv\";\n};\n",
        "exp.cfg:3:", "original.format", "auto");
    ERR("4 columns", "new = { builtin = \"topic\"; };\noriginal = {\n  columns = 4;\n};\n",
        "exp.cfg:3:", "original.columns", "");
    ERR("an empty text field",
        "new = { builtin = \"topic\"; };\noriginal = {\n  text_field = \"\";\n};\n",
        "exp.cfg:3:", "original.text_field", "expected a JSON field name");
    ERR("columns on a built-in task",
        "original = { builtin = \"sentiment\"; };\nnew = {\n  builtin = \"topic\";\n"
        "  columns = 3;\n};\n", "exp.cfg:4:", "new.columns", "only used with TSV files; this task is built-in");
    ERR("columns with JSONL files",
        "original = { builtin = \"sentiment\"; };\n"
        "new = { train = \"p.train.jsonl\"; eval = \"p.eval.jsonl\";\n  columns = 3; };\n",
        "exp.cfg:3:", "new.columns", "only used with TSV files");
    ERR("mlm beside train and eval",
        "new = { builtin = \"topic\"; };\noriginal = {\n  mlm = \"t.txt\"; train = \"a.tsv\"; "
        "eval = \"b.tsv\";\n};\n", "exp.cfg:3:", "original.mlm",
        "clear the others: original.train=\"\" original.eval=\"\"");
    ERR("a header with JSONL files",
        "original = { builtin = \"sentiment\"; };\n"
        "new = { train = \"p.train.jsonl\"; eval = \"p.eval.jsonl\";\n  header = \"yes\"; };\n",
        "exp.cfg:3:", "new.header", "only used with TSV files");
    ERR("a header that is neither",
        "original = { builtin = \"sentiment\"; };\n"
        "new = { train = \"p.train.tsv\"; eval = \"p.eval.tsv\";\n  header = \"maybe\"; };\n",
        "exp.cfg:3:", "new.header", "auto, yes or no");
    ERR("a JSON field with TSV files",
        "original = { builtin = \"sentiment\"; };\n"
        "new = { train = \"p.train.tsv\"; eval = \"p.eval.tsv\";\n  label_field = \"y\"; };\n",
        "exp.cfg:3:", "new.label_field", "only used with JSONL files");
    ERR("pairs to train, single texts to evaluate",
        "original = { builtin = \"sentiment\"; };\n"
        "new = { train = \"p.train.tsv\"; eval = \"p.eval.jsonl\";\n  columns = 3; };\n",
        "exp.cfg:3:", "new.columns", "both hold pairs or both single texts");
}

static void test_paths(void)
{
    char cwd[PATH_MAX], want[PATH_MAX + 64];
    mkdir(in_dir("sub"), 0755);
    mkdir(in_dir("sub/data"), 0755);
    put("sub/data/n.tsv", "x\ty\n");
    put("here.tsv", "x\ty\n");
    put("sub/common.cfg", "model = {\n  hidden = 32;\n  heads = 4;\n};\n");
    put("sub/exp.cfg", "original = { builtin = \"sentiment\"; };\n"
                       "new = { train = \"./data/n.tsv\"; eval = \"data/n.tsv\"; };\n"
                       "@include \"common.cfg\"\n");
    if (!getcwd(cwd, sizeof cwd) || chdir("/") != 0)
        exit(2);
    Experiment x;
    e.msg[0] = '\0';
    int rc = experiment_load(&x, in_dir("sub/exp.cfg"), NULL, 0, &e);
    snprintf(want, sizeof want, "%s/sub/data/n.tsv", dir);
    ok(rc == 0 && strcmp(x.new_task.train, want) == 0 && strcmp(x.new_task.eval, want) == 0,
       "paths resolve against the file's folder, not the working one (%s) %s", e.msg,
       x.new_task.train);
    ok(rc == 0 && x.model.hidden == 32 && x.model.heads == 4,
       "@include is relative to the file's folder");

    put("sub/common.cfg", "model = {\n  hidden = 32;\n  heads = 5;\n};\n");
    e.msg[0] = '\0';
    rc = experiment_load(&x, in_dir("sub/exp.cfg"), NULL, 0, &e);
    ok(rc == -1 && strstr(e.msg, "common.cfg:3: model.heads"),
       "an error in an include names that file and line: %s", e.msg);

    /* an included file in another folder: its paths are relative to it */
    mkdir(in_dir("sub/shared"), 0755);
    put("sub/shared/n.tsv", "x\ty\n");
    put("sub/shared/data.cfg", "new = { train = \"n.tsv\"; eval = \"n.tsv\"; };\n");
    put("sub/inc.cfg", "original = { builtin = \"sentiment\"; };\n@include \"shared/data.cfg\"\n");
    e.msg[0] = '\0';
    rc = experiment_load(&x, in_dir("sub/inc.cfg"), NULL, 0, &e);
    snprintf(want, sizeof want, "%s/sub/shared/n.tsv", dir);
    ok(rc == 0 && strcmp(x.new_task.train, want) == 0,
       "a path in an included file is relative to that file's folder (%s) %s", e.msg,
       rc == 0 ? x.new_task.train : "");

    put("sub/common.cfg", "model = {\n  hidden = 32;\n  heads = 4;\n};\n");
    if (chdir(dir) != 0)
        exit(2);
    const char *const sets[] = { "new.eval=here.tsv" };
    e.msg[0] = '\0';
    rc = experiment_load(&x, in_dir("sub/exp.cfg"), sets, 1, &e);
    snprintf(want, sizeof want, "%s/here.tsv", dir);
    ok(rc == 0 && strcmp(x.new_task.eval, want) == 0,
       "a --set path resolves against the working folder (%s) %s", e.msg, x.new_task.eval);
    const char *const bad[] = { "new.eval=nowhere.tsv" };
    rc = experiment_load(&x, in_dir("sub/exp.cfg"), bad, 1, &e);
    ok(rc == -1 && strstr(e.msg, "--set new.eval: cannot read") && strstr(e.msg, "nowhere.tsv"),
       "an unreadable --set path: %s", e.msg);
    const char *const swap[] = { "new.builtin=topic" };
    rc = experiment_load(&x, in_dir("sub/exp.cfg"), swap, 1, &e);
    ok(rc == -1 && strstr(e.msg, "--set new.builtin:") && strstr(e.msg, "new.train=\"\""),
       "switching a task to a builtin says how to clear the files: %s", e.msg);
    const char *const cleared[] = { "new.builtin=topic", "new.train=", "new.eval=" };
    e.msg[0] = '\0';
    rc = experiment_load(&x, in_dir("sub/exp.cfg"), cleared, 3, &e);
    ok(rc == 0 && strcmp(x.new_task.builtin, "topic") == 0 && !x.new_task.train[0] &&
       !x.new_task.eval[0], "an empty --set value clears a path (%s)", e.msg);
    if (chdir(cwd) != 0)
        exit(2);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

/* base.from's initializer_range starts what the file lacks (a new head),
 * unless model.init_std is given. */
static void test_base_init_std(void)
{
    Experiment x;
    mkdir(in_dir("hfm"), 0755);
    put("hfm/config.json", "{\"model_type\": \"bert\", \"vocab_size\": 40, \"hidden_size\": 16, "
        "\"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"intermediate_size\": 32, "
        "\"max_position_embeddings\": 40, \"type_vocab_size\": 2, \"initializer_range\": 0.05}\n");
    put("hfm.cfg", "base = { from = \"hfm\"; };\noriginal = { mlm = \"t.txt\"; };\n"
        "new = { builtin = \"topic\"; };\n");
    put("t.txt", "a b c\n");
    e.msg[0] = '\0';
    int rc = experiment_load(&x, in_dir("hfm.cfg"), NULL, 0, &e);
    ok(rc == 0 && fabs(x.model.init_std - 0.05) < 1e-12,
       "base.from's initializer_range 0.05 becomes model.init_std (%s)", e.msg);
    const char *set[] = { "model.init_std=0.01" };
    rc = experiment_load(&x, in_dir("hfm.cfg"), set, 1, &e);
    ok(rc == 0 && fabs(x.model.init_std - 0.01) < 1e-12, "a given model.init_std stays (%s)", e.msg);
}

int main(void)
{
    char tmpl[] = "/tmp/mneme-config-XXXXXX";
    if (!mkdtemp(tmpl) || !realpath(tmpl, dir)) {
        diag("cannot create a temporary folder");
        return 2;
    }
    test_syntax();
    test_unknown();
    test_types();
    test_ranges();
    test_consistency();
    test_set();
    test_defaults();
    test_keys();
    test_theme();
    test_round_trip();
    test_data_formats();
    test_paths();
    test_base_init_std();
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return tap_done();
}
