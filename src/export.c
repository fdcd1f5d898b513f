/* mneme export: a run's model back to Hugging Face, as a folder that
 * transformers loads without code (config.json, model.safetensors and
 * the tokenizer files) or, for a LoRA run, a PEFT adapter folder. */
#include "export.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "hf.h"
#include "lora.h"
#include "metrics.h"
#include "model.h"
#include "paths.h"
#include "safetensors.h"

/* The config.json key that marks a folder as an export of mneme's. */
#define EXPORT_MARK "mneme_export"

typedef struct {
    const char *src;           /* run folder or checkpoint */
    char *to;
    const char *task;
    int merge;
} ExportArgs;

static int usage(const char *why, const char *arg)
{
    fprintf(stderr, "mneme export: ");
    fprintf(stderr, why, arg);
    fprintf(stderr, "\nusage: mneme export RUN_DIR|CHECKPOINT --to DIR [--task new|original] "
                    "[--merge]\n");
    return 2;
}

static int parse_args(int argc, char **argv, ExportArgs *a)
{
    memset(a, 0, sizeof *a);
    a->task = "new";
    for (int i = 0; i < argc; i++) {
        if ((strcmp(argv[i], "--to") == 0 || strcmp(argv[i], "--task") == 0)) {
            if (i + 1 >= argc)
                return usage("%s needs a value", argv[i]);
            if (strcmp(argv[i], "--to") == 0)
                a->to = argv[i + 1];
            else
                a->task = argv[i + 1];
            i++;
        } else if (strcmp(argv[i], "--merge") == 0)
            a->merge = 1;
        else if (argv[i][0] == '-')
            return usage("unknown option %s", argv[i]);
        else if (!a->src)
            a->src = argv[i];
        else
            return usage("unexpected argument %s", argv[i]);
    }
    if (!a->src)
        return usage("which run or checkpoint?%s", "");
    if (!a->to)
        return usage("--to DIR is missing%s", "");
    /* "out/", as a shell completes it, is the folder out */
    for (size_t n = strlen(a->to); n > 1 && a->to[n - 1] == '/'; n--)
        a->to[n - 1] = 0;
    const char *last = strrchr(a->to, '/');
    last = last ? last + 1 : a->to;
    if (!strcmp(last, ".") || !strcmp(last, "..") || !strcmp(a->to, "/"))
        return usage("--to %s: name the folder to write (it is replaced as a whole), not one "
                     "that holds the working directory", a->to);
    return 0;
}

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* A run folder's model: its final checkpoint, else the newest step. */
static int run_checkpoint(const char *dir, char *out, size_t n, MnError *e)
{
    char ck[1024];
    snprintf(ck, sizeof ck, "%s/checkpoints", dir);
    snprintf(out, n, "%s/final.safetensors", ck);
    if (access(out, R_OK) == 0)
        return 0;
    DIR *d = opendir(ck);
    if (!d)
        return mn_fail(e, "%s: not a run folder (no checkpoints/)", dir);
    long best = -1;
    struct dirent *de;
    while ((de = readdir(d))) {
        long step;
        char tail[32];
        if (sscanf(de->d_name, "step-%ld%31s", &step, tail) == 2 &&
            strcmp(tail, ".safetensors") == 0 && step > best)
            best = step;
    }
    closedir(d);
    if (best < 0)
        return mn_fail(e, "%s: no checkpoint to export yet", dir);
    snprintf(out, n, "%s/step-%ld.safetensors", ck, best);
    return 0;
}

static int write_json(const char *dir, const char *name, json_t *o, MnError *e)
{
    char path[2200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    /* 15 digits: 0.1 and 1e-12 as written, not their doubles' expansions */
    char *text = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15))
                   : NULL;
    json_decref(o);
    if (!text)
        return mn_fail(e, "%s: out of memory", path);
    int rc = write_file_atomic(path, text, strlen(text), e);
    free(text);
    return rc;
}

static json_t *labels_json(const LabelSet *ls, int by_id)
{
    json_t *o = json_object();
    for (int i = 0; i < ls->n_labels; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        if (by_id)
            json_object_set_new(o, id, json_string(ls->names[i]));
        else
            json_object_set_new(o, ls->names[i], json_integer(i));
    }
    return o;
}

/* vocab.txt, tokenizer_config.json and special_tokens_map.json beside the
 * weights, so AutoTokenizer loads from the same folder. */
static int write_tokenizer(const char *hf_dir, const char *to, MnError *e)
{
    char src[2200], dst[2200];
    snprintf(src, sizeof src, "%s/vocab.txt", hf_dir);
    snprintf(dst, sizeof dst, "%s/vocab.txt", to);
    if (copy_file(src, dst, e) < 0)
        return -1;
    snprintf(src, sizeof src, "%s/tokenizer_config.json", hf_dir);
    snprintf(dst, sizeof dst, "%s/tokenizer_config.json", to);
    if (access(src, R_OK) == 0) {
        if (copy_file(src, dst, e) < 0)
            return -1;
    } else if (write_json(to, "tokenizer_config.json",
                          json_pack("{s:b, s:s}", "do_lower_case", 1, "tokenizer_class",
                                    "BertTokenizer"), e) < 0)
        return -1;
    snprintf(src, sizeof src, "%s/special_tokens_map.json", hf_dir);
    snprintf(dst, sizeof dst, "%s/special_tokens_map.json", to);
    if (access(src, R_OK) == 0)
        return copy_file(src, dst, e);
    return write_json(to, "special_tokens_map.json",
                      json_pack("{s:s, s:s, s:s, s:s, s:s}", "unk_token", "[UNK]", "sep_token",
                                "[SEP]", "pad_token", "[PAD]", "cls_token", "[CLS]",
                                "mask_token", "[MASK]"), e);
}

/* config.json: the base model's, with the class and the task's labels,
 * trained as one label per example (softmax), whatever the base said, and
 * "mneme_export" saying where it came from: replaceable() only replaces
 * a folder that carries it. */
static int write_config(const char *hf_dir, const char *to, const Model *m, const LabelSet *ls,
                        json_t *provenance, MnError *e)
{
    char path[2200];
    json_error_t je;
    snprintf(path, sizeof path, "%s/config.json", hf_dir);
    json_t *o = json_load_file(path, 0, &je);
    if (!json_is_object(o)) {
        json_decref(o);
        json_decref(provenance);
        return mn_fail(e, "%s: %s", path, je.text);
    }
    json_object_set_new(o, "architectures", json_pack("[s]", hf_class_name(m->cfg.arch)));
    json_object_set_new(o, "id2label", labels_json(ls, 1));
    json_object_set_new(o, "label2id", labels_json(ls, 0));
    json_object_del(o, "_num_labels");
    json_object_del(o, "num_labels");
    json_object_del(o, "finetuning_task");
    json_object_set_new(o, "problem_type", json_string("single_label_classification"));
    json_object_set_new(o, "torch_dtype", json_string("float32"));
    json_object_set_new(o, EXPORT_MARK, provenance);
    return write_json(to, "config.json", o, e);
}

/* Tensors whose name fn gives, under that name. */
typedef int (*NameFn)(const Model *m, int t, int arch, int task, char *out, size_t n);

static int head_or_base_name(const Model *m, int t, int arch, int task, char *out, size_t n)
{
    return hf_tensor_name(m, t, arch, task, out, n);
}

static int head_name_peft(const Model *m, int t, int arch, int task, char *out, size_t n)
{
    char name[256];
    const char *mn = m->tensors[t].name;
    if (strncmp(mn, "classifier.", 11) != 0 && strncmp(mn, "pre_classifier.", 15) != 0 &&
        strncmp(mn, "bert.pooler.", 12) != 0)
        return -1;
    if (hf_tensor_name(m, t, arch, task, name, sizeof name) < 0)
        return -1;
    snprintf(out, n, "base_model.model.%s", name);
    return 0;
}

static int adapter_name(const Model *m, int t, int arch, int task, char *out, size_t n)
{
    if (hf_adapter_name(m, t, arch, out, n, NULL, 0) == 0)
        return 0;
    return head_name_peft(m, t, arch, task, out, n);
}

static int write_tensors(const char *path, const Model *m, int task, NameFn fn, MnError *e)
{
    StTensorOut *t = calloc((size_t)m->n_tensors, sizeof *t);
    char (*names)[256] = calloc((size_t)m->n_tensors, sizeof *names);
    int n = 0, rc;
    if (!t || !names) {
        free(t);
        free(names);
        return mn_fail(e, "out of memory");
    }
    for (int i = 0; i < m->n_tensors; i++) {
        if (fn(m, i, m->cfg.arch, task, names[n], sizeof names[n]) < 0)
            continue;
        const ParamTensor *pt = &m->tensors[i];
        t[n].name = names[n];
        t[n].ndim = pt->ndim;
        t[n].shape[0] = pt->shape[0];
        t[n].shape[1] = pt->shape[1];
        t[n].data = m->params + pt->offset;
        n++;
    }
    StMeta meta[] = { { "format", "pt" } };
    rc = safetensors_write(path, t, n, meta, 1, e);
    free(t);
    free(names);
    return rc;
}

/* PEFT's adapter_config.json. target_modules lists the modules as PEFT
 * matches them (by name or "." + name at the end); "output.dense" alone
 * would also match attention.output.dense, so that case is a regular
 * expression, which PEFT matches against the whole name. */
static json_t *adapter_config(const Model *m, const char *base)
{
    char module[LORA_MODULES][64];
    int n = 0, output_only = 0, has_attn_out = 0;
    for (int t = 0; t < m->n_tensors; t++) {
        char name[256], mod[64];
        if (hf_adapter_name(m, t, m->cfg.arch, name, sizeof name, mod, sizeof mod) < 0)
            continue;
        int dup = 0;
        for (int i = 0; i < n; i++)
            dup |= strcmp(module[i], mod) == 0;
        if (!dup && n < LORA_MODULES)
            snprintf(module[n++], sizeof module[0], "%s", mod);
        output_only |= strcmp(mod, "output.dense") == 0;
        has_attn_out |= strcmp(mod, "attention.output.dense") == 0;
    }
    json_t *targets;
    if (output_only && !has_attn_out) {
        char re[512] = ".*\\.layer\\.[0-9]+\\.(";
        for (int i = 0; i < n; i++) {
            strncat(re, i ? "|" : "", sizeof re - strlen(re) - 1);
            for (const char *p = module[i]; *p && strlen(re) + 3 < sizeof re; p++) {
                if (*p == '.')
                    strncat(re, "\\", sizeof re - strlen(re) - 1);
                strncat(re, (char[]){ *p, 0 }, sizeof re - strlen(re) - 1);
            }
        }
        strncat(re, ")", sizeof re - strlen(re) - 1);
        targets = json_string(re);
    } else {
        targets = json_array();
        for (int i = 0; i < n; i++) {
            /* the last part when it names one module; else the full name */
            const char *dot = strrchr(module[i], '.');
            const char *shortn = dot ? dot + 1 : module[i];
            int unique = strcmp(shortn, "dense") != 0;
            json_array_append_new(targets, json_string(unique ? shortn : module[i]));
        }
    }
    /* The pooler too: a base saved without one (an MLM checkpoint) would
     * get another random one at load, and the logits would differ. */
    json_t *save = m->cfg.head_pre ? json_pack("[s, s]", "pre_classifier", "classifier")
                                   : json_pack("[s, s]", "pooler", "classifier");
    /* the float's shortest decimal (0.1, not 0.10000000149011612) */
    char num[32];
    snprintf(num, sizeof num, "%.7g", (double)m->cfg.lora_dropout);
    double dropout = strtod(num, NULL);
    return json_pack("{s:s, s:s, s:s, s:b, s:i, s:f, s:f, s:o, s:s, s:b, s:o, s:b, s:b}",
                     "peft_type", "LORA", "task_type", "SEQ_CLS", "base_model_name_or_path",
                     base, "inference_mode", 1, "r", m->cfg.lora_r, "lora_alpha",
                     (double)m->cfg.lora_alpha, "lora_dropout", dropout,
                     "target_modules", targets, "bias", "none", "fan_in_fan_out", 0,
                     "modules_to_save", save, "use_rslora", 0, "use_dora", 0);
}

/* A PEFT adapter is applied to base.from as it is on disk, so every
 * weight but the adapters and the saved head (the pooler or
 * pre_classifier, the classifier) must still be base.from's: what a base
 * phase trained, or blocks a policy or :unfreeze opened, would be lost
 * without a word. -1 naming what differs, with the way out. */
static int adapter_base_unchanged(const Model *m, const char *base, MnError *e)
{
    static const char hint[] = "export --merge writes the whole model instead";
    if (!base[0])
        return mn_fail(e, "the run's base.from is unknown, and a PEFT adapter needs it as it "
                       "was trained on; %s", hint);
    HfModel h;
    Model b;
    memset(&b, 0, sizeof b);
    if (hf_open(&h, base, e) < 0)
        return mn_wrap(e, "a PEFT adapter is applied to its base.from, which can't be read (%s)",
                       hint);
    int rc = model_create(&b, &m->cfg, 1, e);
    if (rc == 0)
        rc = hf_load(&h, &b, -1, e);
    hf_close(&h);
    int differ = 0;
    char first[256] = "", name[256], saved[256];
    for (int t = 0; rc == 0 && t < m->n_tensors; t++) {
        const ParamTensor *pt = &m->tensors[t];
        if (hf_tensor_name(m, t, m->cfg.arch, -1, name, sizeof name) < 0 ||
            head_name_peft(m, t, m->cfg.arch, -1, saved, sizeof saved) == 0)
            continue;
        if (memcmp(m->params + pt->offset, b.params + pt->offset,
                   pt->numel * sizeof *m->params) != 0 && differ++ == 0)
            snprintf(first, sizeof first, "%s", name);
    }
    model_free(&b);
    if (rc < 0)
        return mn_wrap(e, "%s", base);
    char more[48] = "";
    if (differ > 1)
        snprintf(more, sizeof more, " and %d more tensor%s", differ - 1, differ == 2 ? "" : "s");
    if (differ)
        return mn_fail(e, "%s%s differ%s from %s, the base the adapter would be applied to: the "
                       "run trained base weights (a base phase, or blocks a policy or :unfreeze "
                       "opened), which a LoRA adapter can't carry; %s",
                       first, more, differ == 1 ? "s" : "", base, hint);
    return 0;
}

/* Whether an existing --to may be replaced: empty, or what an export
 * wrote, marked so in its config.json. Never a folder of the user's,
 * even one holding only the same file names: a model downloaded from the
 * hub, perhaps the run's own base.from. */
static int replaceable(const char *to)
{
    char cfg[2200];
    snprintf(cfg, sizeof cfg, "%s/config.json", to);
    json_t *o = json_load_file(cfg, 0, NULL);
    int marked = json_is_object(json_object_get(o, EXPORT_MARK));
    json_decref(o);
    DIR *d = opendir(to);
    if (!d)
        return 0;
    int others = 0, any = 0;
    for (struct dirent *de; (de = readdir(d));) {
        const char *n = de->d_name;
        if (!strcmp(n, ".") || !strcmp(n, ".."))
            continue;
        static const char *const ours[] = { "config.json", "model.safetensors",
                                             "adapter_config.json", "adapter_model.safetensors",
                                             "vocab.txt", "tokenizer_config.json",
                                             "special_tokens_map.json", NULL };
        int mine = 0;
        for (int i = 0; ours[i]; i++)
            mine |= !strcmp(n, ours[i]);
        others |= !mine;
        any = 1;
    }
    closedir(d);
    return !any || (!others && marked);
}

/* The export is written into a folder beside --to and renamed into place
 * at the end, so a failure (a full disk) leaves no half-written model
 * where a loader would find it. */
static int stage_folder(const char *to, char *stage, size_t n, MnError *e)
{
    if (access(to, F_OK) == 0 && !is_dir(to))
        return mn_fail(e, "%s exists and is not a folder: choose another --to", to);
    if (access(to, F_OK) == 0 && !replaceable(to))
        return mn_fail(e, "%s exists and is not an earlier export of mneme's (its config.json "
                       "has no \"" EXPORT_MARK "\", or it holds files an export does not "
                       "write): choose another --to", to);
    if (snprintf(stage, n, "%s.tmp.%ld", to, (long)getpid()) >= (int)n)
        return mn_fail(e, "%s: the path is too long", to);
    remove_tree(stage);
    if (mkdir(stage, 0755) < 0 && make_dirs(stage, e) < 0)
        return mn_wrap(e, "%s", to);
    return 0;
}

static int publish_folder(const char *stage, const char *to, MnError *e)
{
    char old[2200];
    snprintf(old, sizeof old, "%s.old.%ld", to, (long)getpid());
    int had = access(to, F_OK) == 0;
    if (had && rename(to, old) < 0) {
        int err = errno;
        remove_tree(stage);
        return mn_fail(e, "%s: cannot replace it: %s", to, strerror(err));
    }
    if (rename(stage, to) < 0) {
        int err = errno;
        if (had)
            rename(old, to);
        remove_tree(stage);
        return mn_fail(e, "%s: %s", to, strerror(err));
    }
    if (had)
        remove_tree(old);
    return 0;
}

int export_main(int argc, char **argv)
{
    ExportArgs a;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc;
    MnError e;
    char ck[1200], hf_dir[1024], path[2200], base[1024], stage[1100];
    StFile f;
    ModelConfig cfg;
    LabelSet labels[MODEL_MAX_TASKS];
    Model m;
    memset(&m, 0, sizeof m);
    if (access(a.src, F_OK) < 0) {
        fprintf(stderr, "mneme export: %s: %s\n", a.src, strerror(errno));
        return 2;
    }
    if (is_dir(a.src)) {
        if (run_checkpoint(a.src, ck, sizeof ck, &e) < 0) {
            fprintf(stderr, "mneme export: %s\n", e.msg);
            return 2;
        }
    } else
        snprintf(ck, sizeof ck, "%s", a.src);
    if (!hf_run_files(ck, hf_dir, sizeof hf_dir)) {
        fprintf(stderr, "mneme export: %s: no hf/ folder beside it: only a run that started "
                "from a Hugging Face model (base.from) has a vocabulary Hugging Face can load\n",
                a.src);
        return 2;
    }
    if (safetensors_read(&f, ck, &e) < 0) {
        fprintf(stderr, "mneme export: %s\n", e.msg);
        return 2;
    }
    int task = -1;
    rc = checkpoint_read_config(&f, &cfg, labels, &e);
    for (int k = 0; rc == 0 && k < cfg.n_tasks; k++)
        if (strcmp(cfg.task_name[k], a.task) == 0)
            task = k;
    if (rc == 0)
        rc = model_create(&m, &cfg, 1, &e);
    if (rc == 0)
        rc = checkpoint_load(&f, &m, NULL, NULL, &e);
    /* a head the file lacks would be exported as its initialisation */
    int named = 0;             /* checkpoint_require's errors name the file */
    if (rc == 0 && task >= 0)
        rc = named = checkpoint_require(&f, &m, task, ck, &e);
    safetensors_free(&f);
    if (rc < 0) {
        fprintf(stderr, "mneme export: %s%s%s\n", named ? "" : ck, named ? "" : ": ", e.msg);
        model_free(&m);
        return 2;
    }
    rc = 2;
    if (task < 0)
        fprintf(stderr, "mneme export: --task %s: the model's tasks are original and new\n",
                a.task);
    else if (labels[task].n_labels == 1 && strcmp(labels[task].names[0], "mlm") == 0)
        fprintf(stderr, "mneme export: the %s task of %s is masked-language modelling, which "
                "the base model's own MLM head does; export --task new\n", a.task, a.src);
    else if (cfg.prompt_tokens || cfg.prefix_tokens)
        fprintf(stderr, "mneme export: %s was prompt or prefix tuned; only full and LoRA "
                "fine-tuning export to Hugging Face\n", a.src);
    else if (stage_folder(a.to, stage, sizeof stage, &e) < 0)
        fprintf(stderr, "mneme export: %s\n", e.msg);
    else {
        int peft = lora_present(&m) && !a.merge;
        hf_run_base_from(hf_dir, base, sizeof base);
        rc = peft && adapter_base_unchanged(&m, base, &e) < 0;
        if (lora_present(&m) && a.merge)
            lora_merge(&m);
        /* config.json in both: for an adapter it carries the labels, which
         * the base model is loaded with (AutoConfig.from_pretrained) */
        json_t *provenance = json_pack("{s:s, s:s, s:b}", "checkpoint", ck, "task", a.task,
                                       "adapter", peft);
        /* a path that is not UTF-8 has no JSON string: the mark without it */
        if (!provenance)
            provenance = json_pack("{s:s, s:b}", "task", a.task, "adapter", peft);
        if (rc == 0)
            rc = write_config(hf_dir, stage, &m, &labels[task], provenance, &e) < 0;
        else
            json_decref(provenance);
        if (peft && rc == 0) {
            snprintf(path, sizeof path, "%s/adapter_model.safetensors", stage);
            rc = write_tensors(path, &m, task, adapter_name, &e) < 0 ||
                 write_json(stage, "adapter_config.json", adapter_config(&m, base), &e) < 0;
        } else if (rc == 0) {
            snprintf(path, sizeof path, "%s/model.safetensors", stage);
            rc = write_tensors(path, &m, task, head_or_base_name, &e) < 0;
        }
        if (rc == 0)
            rc = write_tokenizer(hf_dir, stage, &e) < 0;
        if (rc == 0)
            rc = publish_folder(stage, a.to, &e) < 0;
        else
            remove_tree(stage);
        if (rc)
            fprintf(stderr, "mneme export: %s\n", e.msg);
        else
            printf("%s: %s (%s task, %d labels) from %s\n", a.to,
                   peft ? "PEFT LoRA adapter" : hf_class_name(cfg.arch), a.task,
                   labels[task].n_labels, ck);
        rc = rc ? 1 : 0;
    }
    model_free(&m);
    return rc;
}
