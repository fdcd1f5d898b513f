#include "hf.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <libconfig.h>

#include "layers.h"

/* The parts of a block, in mneme's (BERT's) names. */
enum { M_QUERY, M_KEY, M_VALUE, M_ATTN_OUT, M_LN1, M_INTER, M_OUT, M_LN2, M_COUNT };

static const char *const bert_module[M_COUNT] = {
    "attention.self.query", "attention.self.key", "attention.self.value",
    "attention.output.dense", "attention.output.LayerNorm", "intermediate.dense",
    "output.dense", "output.LayerNorm",
};

/* One row per architecture. Defaults are those of transformers' config
 * classes, which fill a field that config.json leaves out. */
typedef struct {
    const char *model_type;
    const char *prefix;            /* of the base model's tensors */
    const char *class_name;        /* for sequence classification */
    const char *f_hidden, *f_layers, *f_heads, *f_inter, *f_act;
    int d_hidden, d_layers, d_heads, d_inter;
    const char *f_types;           /* type_vocab_size, or NULL: no token types */
    const char *f_eps;             /* layer_norm_eps, or NULL: 1e-12 always */
    const char *layer;             /* "encoder.layer" */
    const char *module[M_COUNT];
    int head_pre;                  /* pre_classifier + ReLU per head, no pooler */
} Arch;

static const Arch archs[] = {
    [ARCH_BERT] = {
        "bert", "bert.", "BertForSequenceClassification",
        "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
        "hidden_act", 768, 12, 12, 3072, "type_vocab_size", "layer_norm_eps", "encoder.layer",
        { "attention.self.query", "attention.self.key", "attention.self.value",
          "attention.output.dense", "attention.output.LayerNorm", "intermediate.dense",
          "output.dense", "output.LayerNorm" },
        0,
    },
    [ARCH_DISTILBERT] = {
        "distilbert", "distilbert.", "DistilBertForSequenceClassification",
        "dim", "n_layers", "n_heads", "hidden_dim", "activation", 768, 6, 12, 3072,
        NULL, NULL, "transformer.layer",
        { "attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin",
          "sa_layer_norm", "ffn.lin1", "ffn.lin2", "output_layer_norm" },
        1,
    },
};
#define N_ARCHS (int)(sizeof archs / sizeof archs[0])

const char *hf_model_type(int arch)
{
    return arch >= 0 && arch < N_ARCHS ? archs[arch].model_type : "?";
}

const char *hf_class_name(int arch)
{
    return arch >= 0 && arch < N_ARCHS ? archs[arch].class_name : "?";
}

static int exists_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* ---- names ---------------------------------------------------------------- */

int hf_tensor_name(const Model *m, int t, int arch, int head_task, char *out, size_t n)
{
    const Arch *a = &archs[arch];
    const char *name = m->tensors[t].name;
    int layer, used = 0;
    if (strncmp(name, "bert.embeddings.", 16) == 0) {
        snprintf(out, n, "%s%s", a->prefix, name + 5);
        return 0;
    }
    if (sscanf(name, "bert.encoder.layer.%d.%n", &layer, &used) == 1 && used > 0) {
        const char *rest = name + used;
        for (int k = 0; k < M_COUNT; k++) {
            size_t len = strlen(bert_module[k]);
            if (strncmp(rest, bert_module[k], len) == 0 && rest[len] == '.' &&
                strchr(rest + len + 1, '.') == NULL) {
                snprintf(out, n, "%s%s.%d.%s.%s", a->prefix, a->layer, layer, a->module[k],
                         rest + len + 1);
                return 0;
            }
        }
        return -1;             /* adapters */
    }
    if (strncmp(name, "bert.pooler.", 12) == 0) {
        snprintf(out, n, "%s%s", a->prefix, name + 5);
        return 0;
    }
    if (head_task < 0 || head_task >= m->cfg.n_tasks)
        return -1;
    const char *task = m->cfg.task_name[head_task];
    size_t tl = strlen(task);
    static const char *const heads[] = { "classifier.", "pre_classifier." };
    for (int k = 0; k < 2; k++) {
        size_t hl = strlen(heads[k]);
        if (strncmp(name, heads[k], hl) == 0 && strncmp(name + hl, task, tl) == 0 &&
            name[hl + tl] == '.') {
            snprintf(out, n, "%s%s", heads[k], name + hl + tl + 1);
            return 0;
        }
    }
    return -1;
}

int hf_adapter_name(const Model *m, int t, int arch, char *out, size_t n, char *module,
                    size_t mn)
{
    const char *name = m->tensors[t].name;
    int layer, used = 0;
    if (sscanf(name, "bert.encoder.layer.%d.%n", &layer, &used) != 1 || used == 0)
        return -1;
    const char *rest = name + used;
    for (int k = 0; k < M_COUNT; k++) {
        size_t len = strlen(bert_module[k]);
        if (strncmp(rest, bert_module[k], len) != 0 || rest[len] != '.')
            continue;
        const char *tail = rest + len + 1;
        if (strcmp(tail, "lora_A.weight") != 0 && strcmp(tail, "lora_B.weight") != 0)
            continue;
        snprintf(out, n, "base_model.model.%s%s.%d.%s.%s", archs[arch].prefix, archs[arch].layer,
                 layer, archs[arch].module[k], tail);
        if (module)
            snprintf(module, mn, "%s", archs[arch].module[k]);
        return 0;
    }
    return -1;
}

int hf_run_files(const char *checkpoint, char *dir, size_t n)
{
    char p[1024];
    /* absolute, so that "final.safetensors" given from inside checkpoints/ finds ../hf */
    char *real = realpath(checkpoint, NULL);
    snprintf(p, sizeof p, "%s", real ? real : checkpoint);
    free(real);
    for (int up = 0; up < 6; up++) {
        char *slash = strrchr(p, '/');
        if (slash)
            *slash = 0;
        else
            snprintf(p, sizeof p, ".");
        char vocab[1100];
        snprintf(vocab, sizeof vocab, "%s/hf/vocab.txt", p);
        if (exists_file(vocab)) {
            snprintf(dir, n, "%s/hf", p);
            return 1;
        }
        if (!slash)
            break;
    }
    return 0;
}

/* ---- config.json ---------------------------------------------------------- */

static int read_json(const char *path, json_t **out, MnError *e)
{
    json_error_t je;
    *out = json_load_file(path, 0, &je);
    if (!*out) {
        /* jansson's own text repeats the path */
        if (je.line < 1 && access(path, R_OK) < 0)
            return mn_fail(e, "%s: cannot open: %s", path, strerror(errno));
        if (je.line < 1)
            return mn_fail(e, "%s: %s", path, je.text);
        return mn_fail(e, "%s:%d: %s", path, je.line, je.text);
    }
    if (!json_is_object(*out)) {
        json_decref(*out);
        return mn_fail(e, "%s: expected a JSON object", path);
    }
    return 0;
}

/* An integer field in [lo, hi], or def when absent. */
static int get_int(json_t *o, const char *path, const char *key, int def, int lo, int hi,
                   int *v, MnError *e)
{
    json_t *j = json_object_get(o, key);
    if (!j || json_is_null(j)) {
        *v = def;
        return 0;
    }
    if (!json_is_integer(j))
        return mn_fail(e, "%s: %s: expected an integer", path, key);
    json_int_t x = json_integer_value(j);
    if (x < lo || x > hi)
        return mn_fail(e, "%s: %s is %lld; mneme takes %d..%d", path, key, (long long)x, lo, hi);
    *v = (int)x;
    return 0;
}

static int read_labels(json_t *o, const char *path, LabelSet *ls, MnError *e)
{
    json_t *map = json_object_get(o, "id2label");
    memset(ls, 0, sizeof *ls);
    if (!map || json_is_null(map)) {
        /* transformers' default: num_labels of them (2 when not given) */
        json_t *nl = json_object_get(o, "num_labels");
        json_int_t k = json_is_integer(nl) ? json_integer_value(nl) : 2;
        if (nl && !json_is_null(nl) && (!json_is_integer(nl) || k < 1 || k > MAX_LABELS))
            return mn_fail(e, "%s: num_labels: expected an integer 1..%d", path, MAX_LABELS);
        ls->n_labels = (int)k;
        for (int i = 0; i < ls->n_labels; i++)
            snprintf(ls->names[i], LABEL_NAME_MAX, "LABEL_%d", i);
        return 0;
    }
    if (!json_is_object(map))
        return mn_fail(e, "%s: id2label: expected an object of \"id\": \"label\"", path);
    size_t n = json_object_size(map);
    if (n < 1 || n > MAX_LABELS)
        return mn_fail(e, "%s: id2label has %zu labels; mneme takes 1..%d", path, n, MAX_LABELS);
    int seen[MAX_LABELS] = { 0 };
    const char *key;
    json_t *v;
    json_object_foreach(map, key, v) {
        char *end;
        long id = strtol(key, &end, 10);
        if (*end || end == key || id < 0 || id >= (long)n)
            return mn_fail(e, "%s: id2label: key \"%s\" is not an id 0..%zu", path, key, n - 1);
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) >= LABEL_NAME_MAX)
            return mn_fail(e, "%s: id2label[\"%s\"]: expected a label name of 1..%d bytes", path,
                           key, LABEL_NAME_MAX - 1);
        seen[id] = 1;
        snprintf(ls->names[id], LABEL_NAME_MAX, "%s", json_string_value(v));
    }
    for (size_t i = 0; i < n; i++)
        if (!seen[i])
            return mn_fail(e, "%s: id2label lacks id %zu", path, i);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(ls->names[i], ls->names[j]) == 0)
                return mn_fail(e, "%s: id2label names \"%s\" twice", path, ls->names[i]);
    ls->n_labels = (int)n;
    return 0;
}

static int read_config(HfModel *h, MnError *e)
{
    char path[1100];
    json_t *o;
    snprintf(path, sizeof path, "%s/config.json", h->dir);
    if (read_json(path, &o, e) < 0)
        return -1;
    int rc = -1;
    json_t *mt = json_object_get(o, "model_type");
    if (!json_is_string(mt)) {
        mn_fail(e, "%s: model_type is missing; mneme reads \"bert\" and \"distilbert\" models",
                path);
        goto out;
    }
    h->arch = -1;
    for (int k = 0; k < N_ARCHS; k++)
        if (strcmp(json_string_value(mt), archs[k].model_type) == 0)
            h->arch = k;
    if (h->arch < 0) {
        mn_fail(e, "%s: model_type \"%s\" is not supported; mneme reads \"bert\" (BERT, "
                "MiniLM, TinyBERT, domain BERTs) and \"distilbert\" models",
                path, json_string_value(mt));
        goto out;
    }
    const Arch *a = &archs[h->arch];
    ModelConfig *c = &h->shape;
    memset(c, 0, sizeof *c);
    c->arch = h->arch;
    c->head_pre = a->head_pre;
    if (get_int(o, path, "vocab_size", 30522, 5, 1 << 22, &c->vocab, e) < 0 ||
        get_int(o, path, a->f_hidden, a->d_hidden, 1, 4096, &c->hidden, e) < 0 ||
        get_int(o, path, a->f_layers, a->d_layers, 1, HF_MAX_LAYERS, &c->layers, e) < 0 ||
        get_int(o, path, a->f_heads, a->d_heads, 1, 64, &c->heads, e) < 0 ||
        get_int(o, path, a->f_inter, a->d_inter, 1, 16384, &c->intermediate, e) < 0 ||
        get_int(o, path, "max_position_embeddings", 512, 2, 8192, &c->max_positions, e) < 0)
        goto out;
    if (a->f_types) {
        if (get_int(o, path, a->f_types, 2, 1, 64, &c->type_vocab, e) < 0)
            goto out;
    } else
        c->type_vocab = 0;
    if (c->hidden % c->heads) {
        mn_fail(e, "%s: %s %d is not a multiple of %s %d", path, a->f_hidden, c->hidden,
                a->f_heads, c->heads);
        goto out;
    }
    json_t *act = json_object_get(o, a->f_act);
    const char *as = json_is_string(act) ? json_string_value(act) : act ? NULL : "gelu";
    if (as && strcmp(as, "gelu") == 0)
        c->act = ACT_GELU;
    else if (as && (strcmp(as, "gelu_new") == 0 || strcmp(as, "gelu_pytorch_tanh") == 0))
        c->act = ACT_GELU_TANH;
    else {
        mn_fail(e, "%s: %s %s is not supported; mneme runs \"gelu\" (erf) and \"gelu_new\" "
                "(tanh)", path, a->f_act, as ? as : "(not a string)");
        goto out;
    }
    c->ln_eps = LAYERNORM_EPS;
    json_t *eps = a->f_eps ? json_object_get(o, a->f_eps) : NULL;
    if (eps && !json_is_null(eps)) {
        if (!json_is_number(eps) || !(json_number_value(eps) > 0) || json_number_value(eps) > 1) {
            mn_fail(e, "%s: %s: expected a number in (0, 1]", path, a->f_eps);
            goto out;
        }
        c->ln_eps = (float)json_number_value(eps);
    }
    json_t *pe = json_object_get(o, "position_embedding_type");
    if (pe && (!json_is_string(pe) || strcmp(json_string_value(pe), "absolute") != 0)) {
        /* null too: Hugging Face then adds no position embeddings at all */
        mn_fail(e, "%s: position_embedding_type %s is not supported; mneme runs \"absolute\"",
                path, json_is_string(pe) ? json_string_value(pe)
                      : json_is_null(pe) ? "null (no position embeddings)" : "(not a string)");
        goto out;
    }
    static const char *const decoder_keys[] = { "is_decoder", "add_cross_attention" };
    for (size_t i = 0; i < sizeof decoder_keys / sizeof decoder_keys[0]; i++)
        if (json_is_true(json_object_get(o, decoder_keys[i]))) {
            mn_fail(e, "%s: %s true is not supported: mneme runs BERT as an encoder, whose "
                    "attention sees the whole text", path, decoder_keys[i]);
            goto out;
        }
    json_t *pt = json_object_get(o, "problem_type");
    h->multi_label = json_is_string(pt) &&
                     strcmp(json_string_value(pt), "multi_label_classification") == 0;
    json_t *sin = json_object_get(o, "sinusoidal_pos_embds");
    if (json_is_true(sin)) {
        mn_fail(e, "%s: sinusoidal_pos_embds true is not supported (mneme trains position "
                "embeddings; Hugging Face keeps sinusoidal ones fixed)", path);
        goto out;
    }
    h->tie_embeddings = !json_is_false(json_object_get(o, "tie_word_embeddings"));
    json_t *ir = json_object_get(o, "initializer_range");
    h->init_std = json_is_number(ir) ? json_number_value(ir) : 0.02;
    if (read_labels(o, path, &h->labels, e) < 0)
        goto out;
    rc = 0;
out:
    json_decref(o);
    return rc;
}

/* ---- model.safetensors ------------------------------------------------------ */

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* The stored name of a tensor: with or without the base prefix, and the
 * old LayerNorm.gamma / .beta for LayerNorm.weight / .bias. NULL when
 * absent. */
static const StTensorInfo *find_stored(const HfModel *h, const char *hf_name, char *found,
                                       size_t n)
{
    const char *prefix = archs[h->arch].prefix;
    size_t pl = strlen(prefix);
    const char *base = hf_name;
    if (!h->prefixed && strncmp(hf_name, prefix, pl) == 0)
        base = hf_name + pl;
    snprintf(found, n, "%s", base);
    const StTensorInfo *ti = safetensors_find(&h->st, found);
    if (ti)
        return ti;
    size_t len = strlen(found);
    static const char *const old[2][2] = { { "LayerNorm.weight", "LayerNorm.gamma" },
                                           { "LayerNorm.bias", "LayerNorm.beta" } };
    for (int k = 0; k < 2; k++) {
        size_t ol = strlen(old[k][0]);
        if (len >= ol && strcmp(found + len - ol, old[k][0]) == 0) {
            snprintf(found + len - ol, n - (len - ol), "%s", old[k][1]);
            ti = safetensors_find(&h->st, found);
            if (ti)
                return ti;
            snprintf(found + len - ol, n - (len - ol), "%s", old[k][0]);
        }
    }
    return NULL;
}

static int read_weights(HfModel *h, MnError *e)
{
    char path[1100], name[256];
    snprintf(path, sizeof path, "%s/model.safetensors", h->dir);
    if (!exists(path)) {
        char other[1100];
        snprintf(other, sizeof other, "%s/model.safetensors.index.json", h->dir);
        if (exists(other))
            return mn_fail(e, "%s: the weights are split into shards; mneme reads one "
                           "model.safetensors (save it with max_shard_size larger than the model)",
                           h->dir);
        snprintf(other, sizeof other, "%s/pytorch_model.bin", h->dir);
        if (exists(other))
            return mn_fail(e, "%s: only pytorch_model.bin is there; mneme reads safetensors. "
                           "Convert it, every head kept, where torch and safetensors are "
                           "installed: python3 -c \"import torch; from safetensors.torch import "
                           "save_file; sd = torch.load('%s/pytorch_model.bin', map_location="
                           "'cpu'); save_file({k: v.clone().contiguous() for k, v in sd.items()}, "
                           "'%s/model.safetensors', metadata={'format': 'pt'})\"; or fetch the "
                           "hub's model.safetensors",
                           h->dir, h->dir, h->dir);
        snprintf(other, sizeof other, "%s/adapter_config.json", h->dir);
        if (exists(other))
            return mn_fail(e, "%s: a PEFT adapter, not a model: it needs its base model "
                           "(adapter_config.json's base_model_name_or_path); mneme export "
                           "--merge writes a whole model", h->dir);
        static const char *const others[] = { "tf_model.h5", "flax_model.msgpack",
                                              "pytorch_model.bin.index.json" };
        for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
            snprintf(other, sizeof other, "%s/%s", h->dir, others[i]);
            if (exists(other))
                return mn_fail(e, "%s: only %s is there; mneme reads one model.safetensors: "
                               "save the model with transformers' save_pretrained("
                               "safe_serialization=True), or fetch the hub's model.safetensors",
                               h->dir, others[i]);
        }
        return mn_fail(e, "%s: no model.safetensors", h->dir);
    }
    if (safetensors_read(&h->st, path, e) < 0)
        return -1;
    const char *prefix = archs[h->arch].prefix;
    snprintf(name, sizeof name, "%sembeddings.word_embeddings.weight", prefix);
    if (safetensors_find(&h->st, name))
        h->prefixed = 1;
    else if (!safetensors_find(&h->st, name + strlen(prefix)))
        return mn_fail(e, "%s: no %s (with or without \"%s\"): not a %s model's weights", path,
                       name + strlen(prefix), prefix, archs[h->arch].model_type);
    /* before anything is sized from config.json: a config that claims a
     * far larger model than the file holds fails here, not after
     * allocating for it */
    const char *wname = h->prefixed ? name : name + strlen(prefix);
    const StTensorInfo *we = safetensors_find(&h->st, wname);
    char got[64];
    if (we->ndim != 2 || we->shape[0] != h->shape.vocab || we->shape[1] != h->shape.hidden)
        return mn_fail(e, "%s: %s has shape %s, but config.json's vocab_size %d and "
                       "hidden_size %d need [%d, %d]", path, wname,
                       safetensors_shape_text(got, sizeof got, we->ndim, we->shape),
                       h->shape.vocab, h->shape.hidden, h->shape.vocab, h->shape.hidden);
    const StTensorInfo *ti = safetensors_find(&h->st, "classifier.weight");
    if (ti) {
        if (ti->ndim != 2 || ti->shape[1] != h->shape.hidden || ti->shape[0] < 1 ||
            ti->shape[0] > MAX_LABELS)
            return mn_fail(e, "%s: classifier.weight has shape %s, expected [labels (1 to %d), "
                           "hidden_size %d]", path,
                           safetensors_shape_text(got, sizeof got, ti->ndim, ti->shape),
                           MAX_LABELS, h->shape.hidden);
        h->head_labels = (int)ti->shape[0];
        if (h->head_labels != h->labels.n_labels)
            return mn_fail(e, "%s: classifier.weight has %d rows but config.json's id2label "
                           "has %d labels", path, h->head_labels, h->labels.n_labels);
    }
    snprintf(name, sizeof name, "%spooler.dense.weight", h->prefixed ? prefix : "");
    h->has_pooler = !archs[h->arch].head_pre && safetensors_find(&h->st, name) != NULL;
    h->has_pre = archs[h->arch].head_pre && safetensors_find(&h->st, "pre_classifier.weight");
    /* A sequence classifier reads the pooler (pre_classifier): without it
     * the head was trained on something else (token classification, say),
     * and an initialised stand-in would give every text the same logits. */
    if (h->head_labels && !h->has_pooler && !h->has_pre)
        return mn_fail(e, "%s: classifier.weight is there but %s is not, which a %s sequence "
                       "classifier reads before it: is this a token-classification or "
                       "question-answering model? mneme takes a *ForSequenceClassification "
                       "head, or none", path,
                       archs[h->arch].head_pre ? "pre_classifier.weight" : name,
                       archs[h->arch].model_type);
    return 0;
}

int hf_read_config(HfModel *h, const char *dir, MnError *e)
{
    memset(h, 0, sizeof *h);
    snprintf(h->dir, sizeof h->dir, "%s", dir);
    struct stat sb;
    if (stat(dir, &sb) < 0)
        return mn_fail(e, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return mn_fail(e, "%s: not a folder (expected a Hugging Face model folder with "
                       "config.json and model.safetensors)", dir);
    return read_config(h, e);
}

int hf_open(HfModel *h, const char *dir, MnError *e)
{
    if (hf_read_config(h, dir, e) < 0)
        return -1;
    if (read_weights(h, e) < 0) {
        hf_close(h);
        return -1;
    }
    return 0;
}

void hf_close(HfModel *h)
{
    if (h->st.buf || h->st.tensors)
        safetensors_free(&h->st);
    memset(&h->st, 0, sizeof h->st);
}

static int load_one(const HfModel *h, Model *m, int t, const char *hf_name, int required,
                    MnError *e)
{
    char stored[256];
    const ParamTensor *pt = &m->tensors[t];
    const StTensorInfo *ti = find_stored(h, hf_name, stored, sizeof stored);
    if (!ti) {
        if (!required)
            return 0;
        return mn_fail(e, "%s/model.safetensors: tensor %s is missing", h->dir, hf_name);
    }
    int64_t shape[2] = { pt->shape[0], pt->shape[1] };
    if (safetensors_get_f32(&h->st, stored, m->params + pt->offset, pt->ndim, shape, e) < 0)
        return mn_wrap(e, "%s/model.safetensors (config.json implies %s's shape)", h->dir,
                       hf_name);
    return 1;
}

int hf_load(const HfModel *h, Model *m, int head_task, MnError *e)
{
    char name[256];
    if (head_task >= 0 && h->head_labels && h->multi_label)
        return mn_fail(e, "%s/config.json: problem_type multi_label_classification: mneme scores "
                       "a head with softmax, one label an example, which would misread this "
                       "one's sigmoid outputs", h->dir);
    model_params_changed(m);
    for (int t = 0; t < m->n_tensors; t++) {
        const char *mn = m->tensors[t].name;
        int base = strncmp(mn, "bert.", 5) == 0;
        int pooler = strncmp(mn, "bert.pooler.", 12) == 0;
        if (base && hf_tensor_name(m, t, h->arch, -1, name, sizeof name) == 0) {
            if (load_one(h, m, t, name, !pooler, e) < 0)
                return -1;
            continue;
        }
        /* the stored head: its classifier to head_task, its
         * pre_classifier to every head */
        int k = -1;
        for (int task = 0; task < m->cfg.n_tasks && k < 0; task++)
            if (hf_tensor_name(m, t, h->arch, task, name, sizeof name) == 0)
                k = task;
        if (k < 0)
            continue;
        if (strncmp(name, "pre_classifier.", 15) == 0) {
            if (h->has_pre && load_one(h, m, t, name, 1, e) < 0)
                return -1;
        } else if (k == head_task && h->head_labels) {
            if (m->cfg.n_labels[k] != h->head_labels)
                return mn_fail(e, "%s: the stored classifier has %d labels, the %s task %d",
                               h->dir, h->head_labels, m->cfg.task_name[k], m->cfg.n_labels[k]);
            if (load_one(h, m, t, name, 1, e) < 0)
                return -1;
        }
    }
    return 0;
}

/* ---- the MLM head ------------------------------------------------------------ */

/* Names of the MLM head's parts: transform dense, LayerNorm, decoder,
 * decoder bias (two names for BERT's: older files store it twice). */
static const char *const mlm_names[][7] = {
    [ARCH_BERT] = { "cls.predictions.transform.dense.weight",
                    "cls.predictions.transform.dense.bias",
                    "cls.predictions.transform.LayerNorm.weight",
                    "cls.predictions.transform.LayerNorm.bias", "cls.predictions.decoder.weight",
                    "cls.predictions.bias", "cls.predictions.decoder.bias" },
    [ARCH_DISTILBERT] = { "vocab_transform.weight", "vocab_transform.bias",
                          "vocab_layer_norm.weight", "vocab_layer_norm.bias",
                          "vocab_projector.weight", "vocab_projector.bias", NULL },
};

static int get_stored(const HfModel *h, const char *name, const char *alt, float *dst, int ndim,
                      int64_t rows, int64_t cols, MnError *e)
{
    char stored[256];
    int64_t shape[2] = { rows, cols };
    if (!find_stored(h, name, stored, sizeof stored) &&
        !(alt && find_stored(h, alt, stored, sizeof stored)))
        return mn_fail(e, "%s/model.safetensors: tensor %s is missing: original.mlm needs the "
                       "pretrained model's MLM head (a classifier checkpoint has none)",
                       h->dir, name);
    if (safetensors_get_f32(&h->st, stored, dst, ndim, shape, e) < 0)
        return mn_wrap(e, "%s/model.safetensors", h->dir);
    return 0;
}

int hf_load_mlm(const HfModel *h, MlmHead *head, MnError *e)
{
    const ModelConfig *c = &h->shape;
    const char *const *n = mlm_names[h->arch];
    if (mlm_head_alloc(head, c->hidden, c->vocab, c->act, c->ln_eps, h->tie_embeddings, e) < 0)
        return -1;
    int C = c->hidden, V = c->vocab;
    if (get_stored(h, n[0], NULL, head->dense_w, 2, C, C, e) < 0 ||
        get_stored(h, n[1], NULL, head->dense_b, 1, C, 0, e) < 0 ||
        get_stored(h, n[2], NULL, head->ln_g, 1, C, 0, e) < 0 ||
        get_stored(h, n[3], NULL, head->ln_b, 1, C, 0, e) < 0 ||
        (!head->tied && get_stored(h, n[4], NULL, head->decoder, 2, V, C, e) < 0) ||
        get_stored(h, n[5], n[6], head->bias, 1, V, 0, e) < 0) {
        mlm_head_free(head);
        return -1;
    }
    return 0;
}

void hf_run_base_from(const char *hf_dir, char *out, size_t n)
{
    char path[1100];
    config_t cf;
    const char *v = NULL;
    out[0] = 0;
    snprintf(path, sizeof path, "%s/../experiment.cfg", hf_dir);
    config_init(&cf);
    if (config_read_file(&cf, path) && config_lookup_string(&cf, "base.from", &v) && v) {
        char *real = realpath(v, NULL);
        snprintf(out, n, "%s", real ? real : v);
        free(real);
    }
    config_destroy(&cf);
}
