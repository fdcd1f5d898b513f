#include "ui/theme.h"

#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "paths.h"

static const char *const element_names[EL_COUNT] = {
    [EL_NORMAL] = "normal", [EL_HEADER] = "header", [EL_BORDER] = "border",
    [EL_TITLE] = "title", [EL_AXIS] = "axis", [EL_NEW] = "new",
    [EL_ORIGINAL] = "original", [EL_BASELINE] = "baseline",
    [EL_CROSSOVER] = "crossover", [EL_BAR] = "bar", [EL_FROZEN] = "frozen",
    [EL_LOG] = "log", [EL_WARN] = "warning", [EL_ERROR] = "error",
    [EL_FOOTER] = "footer", [EL_PAUSED] = "paused", [EL_TRAIN] = "train",
    [EL_BRANCH0] = "branch1", [EL_BRANCH1] = "branch2", [EL_BRANCH2] = "branch3",
    [EL_BRANCH3] = "branch4", [EL_BRANCH4] = "branch5", [EL_BRANCH5] = "branch6",
};

static const char *const colour_names[] = {
    "black", "red", "green", "yellow", "blue", "magenta", "cyan", "white",
};

const char *theme_element_name(Element el)
{
    return (unsigned)el < EL_COUNT ? element_names[el] : "?";
}

void theme_default(Theme *t)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "default");
    t->colour = 1;
    /* Okabe and Ito's colour-blind-safe palette, on white */
    t->fig = (FigureColours){
        .background = 0xffffff, .text = 0x222222, .grid = 0xe6e6e6, .axis = 0x555555,
        .new_task = 0x0072b2, .original = 0xd55e00, .baseline = 0x777777, .crossover = 0x000000,
        .accent = 0x009e73,
        .series = { 0x0072b2, 0x009e73, 0xcc79a7, 0xe69f00, 0x56b4e9, 0xd55e00, 0xf0e442, 0x000000 },
    };
    for (int i = 0; i < EL_COUNT; i++)
        t->el[i] = (Style){ -1, -1, 0 };
    t->el[EL_HEADER] = (Style){ 7, 4, THEME_BOLD };
    t->el[EL_FOOTER] = (Style){ 0, 6, 0 };
    t->el[EL_BORDER] = (Style){ 4, -1, 0 };
    t->el[EL_TITLE] = (Style){ 6, -1, THEME_BOLD };
    t->el[EL_AXIS] = (Style){ -1, -1, THEME_DIM };
    t->el[EL_NEW] = (Style){ 2, -1, THEME_BOLD };
    t->el[EL_ORIGINAL] = (Style){ 5, -1, 0 };
    t->el[EL_BASELINE] = (Style){ 3, -1, THEME_DIM };
    t->el[EL_CROSSOVER] = (Style){ 1, -1, THEME_BOLD };
    t->el[EL_BAR] = (Style){ 6, -1, 0 };
    t->el[EL_FROZEN] = (Style){ 4, -1, THEME_DIM };
    t->el[EL_WARN] = (Style){ 3, -1, 0 };
    t->el[EL_ERROR] = (Style){ 1, -1, THEME_BOLD };
    t->el[EL_PAUSED] = (Style){ 0, 3, THEME_BOLD };
    t->el[EL_TRAIN] = (Style){ 3, -1, 0 };
    /* the compare view: one colour a branch */
    static const int branch_fg[6] = { 2, 5, 6, 3, 1, 4 };
    for (int i = 0; i < 6; i++)
        t->el[EL_BRANCH0 + i] = (Style){ branch_fg[i], -1, i == 0 ? THEME_BOLD : 0 };
}

static int parse_colour(config_setting_t *s, int *out)
{
    if (config_setting_type(s) == CONFIG_TYPE_INT) {
        int v = config_setting_get_int(s);
        if (v < -1 || v > 255)
            return -1;
        *out = v;
        return 0;
    }
    const char *name = config_setting_get_string(s);
    if (!name)
        return -1;
    if (strcasecmp(name, "default") == 0) {
        *out = -1;
        return 0;
    }
    for (int i = 0; i < 8; i++)
        if (strcasecmp(name, colour_names[i]) == 0) {
            *out = i;
            return 0;
        }
    return -1;
}

static void note(Theme *t, const char *what)
{
    size_t n = strlen(t->warning);
    if (n + strlen(what) + 3 < sizeof t->warning)
        snprintf(t->warning + n, sizeof t->warning - n, "%s%s", n ? ", " : "", what);
}

static int element_of(const char *name)
{
    for (int i = 0; i < EL_COUNT; i++)
        if (strcmp(name, element_names[i]) == 0)
            return i;
    return -1;
}

static int read_style(Theme *t, config_setting_t *g, const char *path, MnError *e)
{
    int el = element_of(config_setting_name(g));
    Style st;
    if (el < 0) {
        note(t, config_setting_name(g));
        return 0;
    }
    if (!config_setting_is_group(g))
        return mn_fail(e, "%s:%d: %s: expected a group { fg = …; bg = …; }", path,
                       config_setting_source_line(g), config_setting_name(g));
    st = t->el[el];
    for (int i = 0; i < config_setting_length(g); i++) {
        config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
        const char *key = config_setting_name(m);
        int *colour = strcmp(key, "fg") == 0 ? &st.fg : strcmp(key, "bg") == 0 ? &st.bg : NULL;
        static const struct { const char *name; int bit; } attrs[] = {
            { "bold", THEME_BOLD }, { "reverse", THEME_REVERSE },
            { "underline", THEME_UNDERLINE }, { "dim", THEME_DIM },
        };
        if (colour) {
            if (parse_colour(m, colour) < 0)
                return mn_fail(e, "%s:%d: %s.%s: expected a colour name or 0-255", path,
                               config_setting_source_line(m), config_setting_name(g), key);
            continue;
        }
        int found = 0;
        for (size_t a = 0; a < sizeof attrs / sizeof attrs[0]; a++)
            if (strcmp(key, attrs[a].name) == 0) {
                found = 1;
                if (config_setting_type(m) != CONFIG_TYPE_BOOL)
                    return mn_fail(e, "%s:%d: %s.%s: expected true or false", path,
                                   config_setting_source_line(m), config_setting_name(g), key);
                if (config_setting_get_bool(m))
                    st.attrs |= attrs[a].bit;
                else
                    st.attrs &= ~attrs[a].bit;
            }
        if (!found) {
            char what[128];
            snprintf(what, sizeof what, "%s.%s", config_setting_name(g), key);
            note(t, what);
        }
    }
    t->el[el] = st;
    return 0;
}

/* One "#rrggbb" of the figure group into *out. */
static int read_figure_colour(config_setting_t *m, unsigned *out)
{
    const char *v = config_setting_get_string(m);
    char *end;
    if (!v || v[0] != '#' || strlen(v) != 7)
        return -1;
    unsigned long c = strtoul(v + 1, &end, 16);
    if (*end)
        return -1;
    *out = (unsigned)c;
    return 0;
}

static int read_figure(Theme *t, config_setting_t *g, const char *path, MnError *e)
{
    FigureColours *f = &t->fig;
    static const char *const series[FIGURE_SERIES] = {
        "branch1", "branch2", "branch3", "branch4", "branch5", "branch6", "branch7", "branch8",
    };
    if (!config_setting_is_group(g))
        return mn_fail(e, "%s:%d: figure: expected a group { new = \"#0072b2\"; … }", path,
                       config_setting_source_line(g));
    for (int i = 0; i < config_setting_length(g); i++) {
        config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
        const char *key = config_setting_name(m);
        unsigned *to = !strcmp(key, "background") ? &f->background : !strcmp(key, "text") ? &f->text :
                       !strcmp(key, "grid") ? &f->grid : !strcmp(key, "axis") ? &f->axis :
                       !strcmp(key, "new") ? &f->new_task : !strcmp(key, "original") ? &f->original :
                       !strcmp(key, "baseline") ? &f->baseline :
                       !strcmp(key, "crossover") ? &f->crossover :
                       !strcmp(key, "accent") ? &f->accent : NULL;
        for (int k = 0; k < FIGURE_SERIES && !to; k++)
            if (!strcmp(key, series[k]))
                to = &f->series[k];
        if (!to) {
            char what[128];
            snprintf(what, sizeof what, "figure.%s", key);
            note(t, what);
        } else if (read_figure_colour(m, to) < 0)
            return mn_fail(e, "%s:%d: figure.%s: expected a colour \"#rrggbb\"", path,
                           config_setting_source_line(m), key);
    }
    return 0;
}

int theme_load(Theme *t, const char *name_or_path, MnError *e)
{
    char path[1024], rel[256];
    config_t cfg;
    int rc = 0;
    theme_default(t);
    if (strchr(name_or_path, '/'))
        snprintf(path, sizeof path, "%s", name_or_path);
    else {
        snprintf(rel, sizeof rel, "themes/%s.theme", name_or_path);
        if (find_data_file(rel, path, sizeof path) < 0)
            return mn_fail(e, "no theme named '%s' (looked for %s)", name_or_path, rel);
    }
    config_init(&cfg);
    if (!config_read_file(&cfg, path)) {
        rc = mn_fail(e, "%s:%d: %s", config_error_file(&cfg) ? config_error_file(&cfg) : path,
                     config_error_line(&cfg), config_error_text(&cfg));
        config_destroy(&cfg);
        return rc;
    }
    config_setting_t *root = config_root_setting(&cfg);
    for (int i = 0; i < config_setting_length(root) && rc == 0; i++) {
        config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
        const char *key = config_setting_name(s);
        if (strcmp(key, "name") == 0 && config_setting_get_string(s))
            snprintf(t->name, sizeof t->name, "%s", config_setting_get_string(s));
        else if (strcmp(key, "colour") == 0 && config_setting_type(s) == CONFIG_TYPE_BOOL)
            t->colour = config_setting_get_bool(s);
        else if (strcmp(key, "figure") == 0)
            rc = read_figure(t, s, path, e);
        else
            rc = read_style(t, s, path, e);
    }
    config_destroy(&cfg);
    return rc;
}

/* xterm's palette: the 16 system colours, the 6x6x6 cube, the greys. */
static void colour_rgb(int c, int rgb[3])
{
    static const int sys[16][3] = {
        { 0, 0, 0 }, { 205, 0, 0 }, { 0, 205, 0 }, { 205, 205, 0 }, { 0, 0, 238 },
        { 205, 0, 205 }, { 0, 205, 205 }, { 229, 229, 229 }, { 127, 127, 127 }, { 255, 0, 0 },
        { 0, 255, 0 }, { 255, 255, 0 }, { 92, 92, 255 }, { 255, 0, 255 }, { 0, 255, 255 },
        { 255, 255, 255 },
    };
    if (c < 16) {
        memcpy(rgb, sys[c], sizeof sys[c]);
    } else if (c < 232) {
        static const int level[6] = { 0, 95, 135, 175, 215, 255 };
        c -= 16;
        rgb[0] = level[c / 36];
        rgb[1] = level[c / 6 % 6];
        rgb[2] = level[c % 6];
    } else {
        rgb[0] = rgb[1] = rgb[2] = 8 + 10 * (c - 232);
    }
}

int theme_nearest_colour(int c, int n_colours)
{
    if (c < 0 || c < n_colours || n_colours < 1)
        return c;
    if (n_colours > 16)
        n_colours = 16;
    int want[3], best = 0;
    long best_d = -1;
    colour_rgb(c > 255 ? 255 : c, want);
    const int grey = want[0] == want[1] && want[1] == want[2];
    for (int i = 0; i < n_colours; i++) {
        int have[3];
        colour_rgb(i, have);
        if (grey && (have[0] != have[1] || have[1] != have[2]))
            continue;          /* a grey stays a grey, not a dull yellow */
        long d = 0;
        for (int k = 0; k < 3; k++)
            d += (long)(want[k] - have[k]) * (want[k] - have[k]);
        if (best_d < 0 || d < best_d) {
            best_d = d;
            best = i;
        }
    }
    return best;
}
