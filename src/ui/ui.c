/* The one file that talks to curses: terminal setup and restore, keys,
 * signals, and copying the canvas that screen.c drew onto the screen. */
#define _XOPEN_SOURCE_EXTENDED 1
#include "ui/ui.h"

#include <curses.h>
#include <errno.h>
#include <langinfo.h>
#include <poll.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "detach.h"
#include "plot.h"
#include "trainer.h"
#include "ui/canvas.h"
#include "ui/command.h"
#include "ui/link.h"
#include "ui/screen.h"
#include "ui/theme.h"

#define FRAME_S 0.05           /* at most ~20 redraws a second for keys */
#define DATA_FRAME_S 0.1       /* and ~10 for new training data */
#define KEY_WAIT_MS 50         /* keys are answered within this */
#define STATUS_S 5.0           /* how long a message stays in the footer */
#define HISTORY 16
#define WHEEL_LINES 3          /* log or page lines a wheel notch scrolls */

static volatile sig_atomic_t stop_signal;
static const char quit_question[] = "quit? checkpoint and quit: y / n, d: leave it training";
static const char leave_question[] = "stop the run? y: checkpoint and stop it, d: leave it training, n: no";
/* For the atexit handler, which takes no argument: the terminal must be
 * given back on every way out, exit() from anywhere included. */
static int curses_on;

static void on_signal(int sig)
{
    stop_signal = sig;
}

/* Leaves the terminal as it was; safe to call twice, and from atexit. */
static void restore_terminal(void)
{
    if (curses_on) {
        curses_on = 0;
        /* a terminal without an alternate screen (vt100) keeps what was
         * drawn: what is printed after must not land on the old footer */
        move(LINES - 1, 0);
        clrtoeol();
        refresh();
        endwin();
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* instead: what to run where the workbench cannot be shown */
static int usable_terminal(const char *instead)
{
    const char *term = getenv("TERM");
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fprintf(stderr, "mneme: not a terminal: the workbench needs one; use %s\n", instead);
        return 0;
    }
    if (!term || !*term || strcmp(term, "dumb") == 0) {
        fprintf(stderr, "mneme: TERM=%s cannot show the workbench; use %s\n", term ? term : "",
                instead);
        return 0;
    }
    return 1;
}

static attr_t attrs_of(const Style *s)
{
    attr_t a = A_NORMAL;
    if (s->attrs & THEME_BOLD)
        a |= A_BOLD;
    if (s->attrs & THEME_REVERSE)
        a |= A_REVERSE;
    if (s->attrs & THEME_UNDERLINE)
        a |= A_UNDERLINE;
    if (s->attrs & THEME_DIM)
        a |= A_DIM;
    return a;
}

/* Colour pair el+1 for each element; none on a mono theme or terminal. */
static int setup_colours(const Theme *t)
{
    if (!t->colour || !has_colors() || start_color() == ERR)
        return 0;
    use_default_colors();
    for (int i = 0; i < EL_COUNT; i++) {
        short fg = (short)t->el[i].fg, bg = (short)t->el[i].bg;
        fg = (short)theme_nearest_colour(fg, COLORS);
        bg = (short)theme_nearest_colour(bg, COLORS);
        init_pair((short)(i + 1), fg, bg);
    }
    return 1;
}

/* Copies the cells of c that differ from shown (what the last blit put
 * there) onto the screen; all of them when all is set or the size
 * changed. Skipping unchanged cells keeps drawing off training's CPU. */
static void blit(const Canvas *c, Canvas *shown, const Theme *t, int colour, int all)
{
    if (shown->w != c->w || shown->h != c->h || !shown->cells) {
        canvas_free(shown);
        if (canvas_init(shown, c->w, c->h, c->utf8) < 0)
            memset(shown, 0, sizeof *shown);
        all = 1;
    }
    for (int y = 0; y < c->h; y++)
        for (int x = 0; x < c->w; x++) {
            const Cell *cell = &c->cells[y * c->w + x];
            if (!all && shown->cells) {
                const Cell *old = &shown->cells[y * c->w + x];
                if (old->ch == cell->ch && old->el == cell->el)
                    continue;
            }
            wchar_t wch[2] = { (wchar_t)cell->ch, 0 };
            cchar_t cc;
            setcchar(&cc, wch, attrs_of(&t->el[cell->el]),
                     colour ? (short)(cell->el + 1) : 0, NULL);
            mvadd_wch(y, x, &cc);
        }
    if (shown->cells)
        memcpy(shown->cells, c->cells, sizeof *c->cells * (size_t)c->w * (size_t)c->h);
    wnoutrefresh(stdscr);
    doupdate();
}

/* After getch gave ERR: has the terminal gone (a dropped SSH connection,
 * a closed pty)? Reads then fail with EIO, or the descriptor hangs up. */
static int terminal_gone(int err)
{
    struct pollfd p = { STDIN_FILENO, POLLIN, 0 };
    if (err == EIO || err == EBADF)
        return 1;
    if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR | POLLNVAL)))
        return 1;
    return 0;
}

static int locale_is_utf8(void)
{
    const char *ascii = getenv("MNEME_ASCII");
    if (ascii && *ascii && strcmp(ascii, "0") != 0)
        return 0;
    return strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
}

/* The `:` line: what is typed, its history, and the footer message. */
typedef struct {
    int active;
    char text[128];
    char history[HISTORY][128];
    int n_history, browse;     /* browse: index into history while moving */
    char status[256];
    double status_until;
    size_t cursor;             /* in text */
} Prompt;

static void post(Link *l, const Command *c, Prompt *p);

static void say(Prompt *p, const char *msg)
{
    snprintf(p->status, sizeof p->status, "%.*s", (int)sizeof p->status - 1, msg);
    p->status_until = now_s() + STATUS_S;
}

static void remember(Prompt *p)
{
    if (!p->text[0])
        return;
    if (p->n_history == HISTORY) {
        memmove(p->history[0], p->history[1], sizeof p->history[0] * (HISTORY - 1));
        p->n_history--;
    }
    snprintf(p->history[p->n_history++], sizeof p->history[0], "%s", p->text);
}

/* Opens the `:` line with text typed in, the cursor at its end. */
static void open_prompt(Prompt *p, const char *text)
{
    p->active = 1;
    snprintf(p->text, sizeof p->text, "%s", text);
    p->cursor = strlen(p->text);
    p->browse = p->n_history;
}

/* ---- the mouse ---- */

/* What the workbench does with a mouse event: a button-1 press, or a
 * wheel notch. Everything else (releases, other buttons) is dropped. */
typedef enum { MOUSE_NONE, MOUSE_CLICK, MOUSE_WHEEL_UP, MOUSE_WHEEL_DOWN } MouseAction;

/* Clicks and the wheel where the terminal reports them (xterm's SGR
 * mode and the like); elsewhere, or with MNEME_MOUSE=0, the keys alone,
 * exactly as without: no mouse is no error. */
static void setup_mouse(void)
{
    const char *env = getenv("MNEME_MOUSE");
    if (env && strcmp(env, "0") == 0)
        return;
    mmask_t want = BUTTON1_PRESSED | BUTTON1_CLICKED | BUTTON4_PRESSED | BUTTON5_PRESSED;
    if (mousemask(want, NULL) == 0)
        return;
    if (!has_mouse()) {
        mousemask(0, NULL);
        return;
    }
    /* no waiting to tell a click from a double click: act on the press */
    mouseinterval(0);
}

/* The event behind a KEY_MOUSE, and where it happened. */
static MouseAction read_mouse(int *x, int *y)
{
    MEVENT ev;
    if (getmouse(&ev) != OK)
        return MOUSE_NONE;
    *x = ev.x;
    *y = ev.y;
    if (ev.bstate & (BUTTON1_PRESSED | BUTTON1_CLICKED))
        return MOUSE_CLICK;
    if (ev.bstate & BUTTON4_PRESSED)
        return MOUSE_WHEEL_UP;
    if (ev.bstate & BUTTON5_PRESSED)
        return MOUSE_WHEEL_DOWN;
    return MOUSE_NONE;
}

/* Lines a wheel notch moves back (up) or forward (down); 0 for a click. */
static int wheel_back(MouseAction m)
{
    return m == MOUSE_WHEEL_UP ? WHEEL_LINES : m == MOUSE_WHEEL_DOWN ? -WHEEL_LINES : 0;
}

/* Moves the log panel by lines back (negative: forward), within it. */
static void scroll_log(ScreenOptions *opt, const Snapshot *snap, int back)
{
    int rows = screen_log_rows(COLS, LINES, snap->n_groups);
    opt->log_scroll = screen_log_clamp(opt->log_scroll + back, snap->n_log, rows);
}

/* Follows branch i by its name, the same command as `:follow NAME`. */
static void follow_branch(Link *l, const Snapshot *snap, int i, Prompt *p)
{
    char line[128], err[256];
    UiCommand uc;
    if (i < 0 || i >= snap->n_branches)
        return;
    snprintf(line, sizeof line, "follow %.64s", snap->branches[i].name);
    if (command_parse(line, &uc, err, sizeof err) < 0) {
        say(p, err);
        return;
    }
    post(l, &uc.cmd, p);
}

/* A click on a layer never changes training itself: it types the freeze
 * or unfreeze on the command line, for Enter to apply or Esc to drop. */
static void offer_layer_command(Prompt *p, const Snapshot *snap, ScreenHit hit)
{
    char line[128], why[128];
    if (screen_layer_command(snap, hit, line, sizeof line, why, sizeof why) < 0) {
        say(p, why);
        return;
    }
    open_prompt(p, line);
}

/* A mouse event on the run's screen (no page or question open). */
static void mouse_on_run(Link *l, const Snapshot *snap, ScreenOptions *opt, Prompt *p,
                         MouseAction m, int x, int y)
{
    ScreenHit hit = screen_hit(COLS, LINES, snap, opt, x, y);
    if (m != MOUSE_CLICK) {
        if (hit.kind == HIT_LOG)
            scroll_log(opt, snap, wheel_back(m));
        return;
    }
    if (hit.kind == HIT_BRANCH)
        follow_branch(l, snap, hit.index, p);
    else if (hit.kind == HIT_LAYER)
        offer_layer_command(p, snap, hit);
}

/* Runs a parsed command; returns 1 when it asks to quit. */
/* :plot: the figure of what is on screen (the loss view's losses, the
 * compare view's branches, the branch followed), said in the footer. */
static void plot_screen(const Link *l, const char *file, const ScreenOptions *opt,
                        const Snapshot *snap, Prompt *p)
{
    PlotOptions po;
    MnError e;
    char out[4400], msg[4600];
    memset(&po, 0, sizeof po);
    po.run_dir = l->dir;
    po.loss = opt->view == VIEW_LOSS;
    po.all = opt->view == VIEW_COMPARE;
    if (!po.all && snap->followed > 0 && snap->followed < snap->n_branches)
        po.branches[po.n_branches++] = snap->branches[snap->followed].name;
    po.width = 1200;
    po.height = 700;
    if (file[0])
        snprintf(out, sizeof out, "%s", file);
    else
        snprintf(out, sizeof out, "%s/plot-step-%ld.png", l->dir, snap->step);
    po.out = out;
    if (plot_run(&po, &e) < 0)
        snprintf(msg, sizeof msg, "error: plot: %s", e.msg);
    else
        snprintf(msg, sizeof msg, "plot: wrote %s", out);
    say(p, msg);
}

static int run_command(Link *l, const UiCommand *uc, Theme *theme, int *colour, int *repaint,
                       ScreenOptions *opt, Prompt *p, const Snapshot *snap)
{
    MnError e;
    Theme next;
    char msg[1100];
    switch (uc->kind) {
    case UC_VIEW:
        opt->view = opt->view == VIEW_LOSS ? VIEW_ACCURACY : VIEW_LOSS;
        return 0;
    case UC_COMPARE:
        opt->view = opt->view == VIEW_COMPARE ? VIEW_ACCURACY : VIEW_COMPARE;
        return 0;
    case UC_THEME:
        if (theme_load(&next, uc->arg, &e) < 0) {
            snprintf(msg, sizeof msg, "theme: %s", e.msg);
            say(p, msg);
            return 0;
        }
        *theme = next;
        *colour = setup_colours(theme);
        clearok(curscr, TRUE);
        *repaint = 1;
        snprintf(msg, sizeof msg, "theme %s", theme->name);
        say(p, msg);
        return 0;
    case UC_DETACH:
        return 2;
    case UC_PLOT:
        plot_screen(l, uc->arg, opt, snap, p);
        return 0;
    case UC_TRAINER:
        if (uc->cmd.kind == CMD_QUIT)
            return 1;
        post(l, &uc->cmd, p);
        return 0;
    }
    return 0;
}

/* A key while the `:` line is open; returns 1 when a command asks to quit. */
static int prompt_key(Prompt *p, int ch, Link *l, Theme *theme, int *colour, int *repaint,
                      ScreenOptions *opt, const Snapshot *snap)
{
    size_t len = strlen(p->text);
    char err[256];
    UiCommand uc;
    if (ch == '\r' || ch == '\n' || ch == KEY_ENTER) {
        p->active = 0;
        remember(p);
        if (!p->text[0])
            return 0;
        if (command_parse(p->text, &uc, err, sizeof err) < 0) {
            say(p, err);
            return 0;
        }
        return run_command(l, &uc, theme, colour, repaint, opt, p, snap);
    }
    (void)len;
    if (ch == 27) {
        p->active = 0;
    } else if (ch == '\t') {
        /* commands and keys, and the model's parts after freeze */
        const char *parts[SNAP_GROUPS];
        int n_parts = 0;
        for (int g = 0; g < snap->n_groups && g < SNAP_GROUPS; g++)
            parts[n_parts++] = snap->groups[g].name;
        if (command_complete_parts(p->text, sizeof p->text, parts, n_parts) == 0)
            say(p, "no completion");
        p->cursor = strlen(p->text);
    } else if (ch == KEY_UP || ch == KEY_DOWN) {
        p->browse += ch == KEY_UP ? -1 : 1;
        if (p->browse < 0)
            p->browse = 0;
        if (p->browse >= p->n_history) {
            p->browse = p->n_history;
            p->text[0] = 0;
        } else
            snprintf(p->text, sizeof p->text, "%s", p->history[p->browse]);
        p->cursor = strlen(p->text);
    } else {
        static const struct { int key; EditKey edit; } map[] = {
            { KEY_LEFT, EDIT_LEFT }, { KEY_RIGHT, EDIT_RIGHT }, { KEY_HOME, EDIT_HOME },
            { 1, EDIT_HOME }, { KEY_END, EDIT_END }, { 5, EDIT_END },
            { KEY_BACKSPACE, EDIT_BACKSPACE }, { 127, EDIT_BACKSPACE }, { 8, EDIT_BACKSPACE },
            { KEY_DC, EDIT_DELETE }, { 21, EDIT_KILL_START }, { 23, EDIT_KILL_WORD },
        };
        EditKey k = EDIT_INSERT;
        for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
            if (map[i].key == ch)
                k = map[i].edit;
        if (k == EDIT_INSERT && !(ch >= 0x20 && ch < 0x7f))
            return 0;
        if (line_edit(p->text, sizeof p->text, &p->cursor, k, ch) < 0)
            p->active = 0;
    }
    return 0;
}

/* The theme asked for when --theme was not given: the experiment's, or
 * where it left the default, the environment's. */
static const char *theme_choice(const Experiment *x)
{
    const char *env = getenv("MNEME_THEME");
    if (strcmp(x->ui.theme, "default") != 0)
        return x->ui.theme;
    if (env && *env)
        return env;
    return getenv("NO_COLOR") && *getenv("NO_COLOR") ? "mono" : "default";
}

/* How a session of the workbench ended. */
typedef enum {
    END_QUIT,                  /* q y: checkpoint and stop the run */
    END_DETACH,                /* d: leave it training */
    END_HANGUP,                /* the terminal went away */
    END_SIGNAL,                /* SIGINT, SIGTERM */
    END_GONE,                  /* the run ended under the workbench */
    END_FAILED                 /* the workbench itself could not go on */
} Ending;

/* The curses side of a session: the screen and what was drawn on it. */
typedef struct {
    SCREEN *scr;
    Canvas canvas, shown;
    ScreenOptions opt;
    Theme *theme;
    int colour, repaint;
    Snapshot snap;
} Session;

static void post(Link *l, const Command *c, Prompt *p)
{
    char err[512];
    if (link_post(l, c, err, sizeof err) < 0)
        say(p, err);
}

static int all_stopped(const Snapshot *s)
{
    for (int i = 0; i < s->n_branches; i++)
        if (s->branches[i].state != TS_STOPPED)
            return 0;
    return s->n_branches > 0;
}

static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

/* Curses on; 0, or -1 (said on stderr) when the terminal cannot. */
static int session_open(Session *w, Theme *theme, Link *l)
{
    memset(w, 0, sizeof *w);
    w->opt.view = VIEW_ACCURACY;
    w->theme = theme;
    w->repaint = 1;
    if (!(w->scr = newterm(NULL, stdout, stdin))) {
        fprintf(stderr, "mneme: cannot use TERM=%s; use mneme run --headless\n", getenv("TERM"));
        return -1;
    }
    curses_on = 1;
    atexit(restore_terminal);
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    curs_set(0);
    set_escdelay(25);
    wtimeout(stdscr, KEY_WAIT_MS);
    setup_mouse();
    w->colour = setup_colours(theme);
    if (theme->warning[0]) {
        char line[sizeof theme->name + sizeof theme->warning + 64];
        snprintf(line, sizeof line, "warning: theme %s: unknown keys ignored: %s", theme->name,
                 theme->warning);
        link_log(l, &w->snap, line);
    }
    return 0;
}

/* A last footer, for what happens while the run checkpoints. */
static void session_say(Session *w, const char *status)
{
    if (!w->canvas.cells)
        return;
    w->opt.status = status;
    w->opt.prompt = NULL;
    screen_draw(&w->canvas, &w->snap, &w->opt);
    blit(&w->canvas, &w->shown, w->theme, w->colour, w->repaint);
}

/* The terminal back as it was. */
static void session_close(Session *w)
{
    restore_terminal();
    if (w->scr)
        delscreen(w->scr);
    canvas_free(&w->canvas);
    canvas_free(&w->shown);
}

/* Keys and drawing until the session ends; the screen stays on. */
static Ending session_run(Session *w, Link *l)
{
    Prompt prompt;
    Theme *theme = w->theme;
    int dirty = 1, asking = 0, gone = 0;
    unsigned long logged = 0;  /* snap.n_logged when last seen */
    char error[SNAP_LINE] = "";  /* the last error logged, until a key dismisses it */
    char gone_why[SNAP_LINE] = "", gone_line[SNAP_LINE + 16];
    double last_draw = 0;
    Ending end = END_QUIT;
    int utf8 = locale_is_utf8();
    int mouse_x = 0, mouse_y = 0;
    memset(&prompt, 0, sizeof prompt);
    if (l->read_only)
        say(&prompt, "read-only: this workbench watches; d or q leaves");
    for (;;) {
        errno = 0;
        int ch = getch();
        int err = errno;
        Command cmd;
        MouseAction mouse = MOUSE_NONE;
        memset(&cmd, 0, sizeof cmd);
        if (stop_signal) {
            /* a hang-up is a terminal gone (a dropped SSH session), not a
             * wish to stop: the run goes on */
            end = stop_signal == SIGHUP ? END_HANGUP : END_SIGNAL;
            break;
        }
        /* a mouse event the workbench does not act on is no key at all:
         * it dismisses nothing and cancels nothing */
        if (ch == KEY_MOUSE && (mouse = read_mouse(&mouse_x, &mouse_y)) == MOUSE_NONE)
            ch = ERR;
        if (ch != ERR && ch != KEY_RESIZE && error[0]) {
            error[0] = 0;
            dirty = 1;
        }
        if (ch == ERR && terminal_gone(err)) {
            /* as SIGHUP: checkpoint, restore, exit */
            end = END_HANGUP;
            break;
        }
        if (gone && ch != ERR && ch != KEY_RESIZE && ch != KEY_MOUSE) {
            /* the run has ended: any of the leaving keys leaves */
            if (ch == 'q' || ch == 'Q' || ch == 'd' || ch == 27) {
                end = END_GONE;
                break;
            }
        }
        if (asking && ch != ERR && ch != KEY_RESIZE) {
            /* y stops the run, d leaves it training, anything else cancels */
            asking = 0;
            dirty = 1;
            if (ch == 'y' || ch == 'Y' || (l->r && (ch == 's' || ch == 'S'))) {
                end = END_QUIT;
                break;
            }
            if (ch == 'd' || ch == 'D') {
                end = END_DETACH;
                break;
            }
            say(&prompt, "quit cancelled");
            ch = ERR;
        }
        if (w->opt.help && ch != ERR && ch != KEY_RESIZE) {
            /* the help page is modal: it scrolls and closes, and nothing
             * reaches the run underneath */
            int max = screen_help_scroll_max(COLS, LINES);
            if (ch == '?' || ch == 27 || ch == 'q' || ch == 'Q' || ch == '\n' || ch == '\r')
                w->opt.help = 0;
            else if (ch == KEY_DOWN || ch == 'j')
                w->opt.help_scroll++;
            else if (ch == KEY_UP || ch == 'k')
                w->opt.help_scroll--;
            else if (ch == KEY_NPAGE || ch == ' ')
                w->opt.help_scroll += LINES > 6 ? LINES - 6 : 1;
            else if (ch == KEY_PPAGE)
                w->opt.help_scroll -= LINES > 6 ? LINES - 6 : 1;
            else if (ch == KEY_HOME)
                w->opt.help_scroll = 0;
            else if (ch == KEY_END)
                w->opt.help_scroll = max;
            else if (ch == KEY_MOUSE)
                w->opt.help_scroll -= wheel_back(mouse);
            if (w->opt.help_scroll > max)
                w->opt.help_scroll = max;
            if (w->opt.help_scroll < 0)
                w->opt.help_scroll = 0;
            dirty = 1;
            ch = ERR;
        }
        if (w->opt.log_page && !w->opt.help && !prompt.active && ch != ERR && ch != KEY_RESIZE) {
            /* the log page is modal too: its own keys only, so reading
             * never pauses or quits the run underneath */
            int rows = LINES - 4 > 1 ? LINES - 4 : 1;
            int n = screen_log_page_lines(&w->snap, w->opt.log_page_errors);
            if (ch == 'L' || ch == 27 || ch == 'q' || ch == 'Q')
                w->opt.log_page = 0;
            else if (ch == 'e' || ch == 'E') {
                w->opt.log_page_errors = !w->opt.log_page_errors;
                w->opt.log_page_scroll = 0;
            } else if (ch == KEY_UP || ch == 'k')
                w->opt.log_page_scroll++;
            else if (ch == KEY_DOWN || ch == 'j')
                w->opt.log_page_scroll--;
            else if (ch == KEY_PPAGE)
                w->opt.log_page_scroll += rows;
            else if (ch == KEY_NPAGE || ch == ' ')
                w->opt.log_page_scroll -= rows;
            else if (ch == KEY_HOME)
                w->opt.log_page_scroll = n;
            else if (ch == KEY_END)
                w->opt.log_page_scroll = 0;
            else if (ch == KEY_RIGHT || ch == 'l')
                w->opt.log_page_x += 8;
            else if (ch == KEY_LEFT || ch == 'h')
                w->opt.log_page_x = w->opt.log_page_x > 8 ? w->opt.log_page_x - 8 : 0;
            else if (ch == KEY_MOUSE)
                w->opt.log_page_scroll += wheel_back(mouse);
            if (w->opt.log_page_scroll > n - rows)
                w->opt.log_page_scroll = n - rows;
            if (w->opt.log_page_scroll < 0)
                w->opt.log_page_scroll = 0;
            if (w->opt.log_page_x > SNAP_LINE)
                w->opt.log_page_x = SNAP_LINE;
            dirty = 1;
            ch = ERR;
        }
        if (prompt.active && ch == KEY_MOUSE) {
            /* while a command is typed the wheel still reads the log; a
             * click would lose what is typed, so it does nothing */
            if (mouse != MOUSE_CLICK)
                mouse_on_run(l, &w->snap, &w->opt, &prompt, mouse, mouse_x, mouse_y);
            dirty = 1;
            ch = ERR;
        }
        if (prompt.active && ch != ERR && ch != KEY_RESIZE) {
            int asked = prompt_key(&prompt, ch, l, theme, &w->colour, &w->repaint, &w->opt, &w->snap);
            if (asked == 1) {
                end = END_QUIT;
                break;
            }
            if (asked == 2) {
                end = END_DETACH;
                break;
            }
            dirty = 1;
            ch = ERR;
        }
        switch (ch) {
        case ' ':
            cmd.kind = CMD_PAUSE;
            post(l, &cmd, &prompt);
            break;
        case 'c':
            cmd.kind = CMD_CHECKPOINT;
            post(l, &cmd, &prompt);
            break;
        case 'r':
            cmd.kind = CMD_RELOAD;
            post(l, &cmd, &prompt);
            break;
        case 'e':
            cmd.kind = CMD_EVALUATE;
            post(l, &cmd, &prompt);
            break;
        case 'l':
            w->opt.view = w->opt.view == VIEW_LOSS ? VIEW_ACCURACY : VIEW_LOSS;
            dirty = 1;
            break;
        case 'v':
            w->opt.view = w->opt.view == VIEW_COMPARE ? VIEW_ACCURACY : VIEW_COMPARE;
            dirty = 1;
            break;
        case '\t':
            cmd.kind = CMD_FOLLOW;
            cmd.value = -1;
            post(l, &cmd, &prompt);
            break;
        case 'f':
            /* the name and overrides are typed on the command line */
            open_prompt(&prompt, "fork ");
            dirty = 1;
            break;
        case '+':
        case '=':
            /* zoom in on the latest steps; - out, 0 the whole phase */
            w->opt.zoom = w->opt.zoom > 0 ? w->opt.zoom / 2 : w->snap.total_steps / 2;
            if (w->opt.zoom < 20)
                w->opt.zoom = 20;
            dirty = 1;
            break;
        case '-':
            w->opt.zoom = w->opt.zoom > 0 && w->opt.zoom * 2 < w->snap.total_steps ? w->opt.zoom * 2 : 0;
            dirty = 1;
            break;
        case '0':
            w->opt.zoom = 0;
            dirty = 1;
            break;
        case 'L':
            w->opt.log_page = 1;
            w->opt.log_page_scroll = w->opt.log_page_x = 0;
            dirty = 1;
            break;
        case '?':
            w->opt.help = 1;
            w->opt.help_scroll = 0;
            dirty = 1;
            break;
        case 27:
            if (w->opt.help) {
                w->opt.help = 0;
                dirty = 1;
            }
            break;
        case ':':
            open_prompt(&prompt, "");
            dirty = 1;
            break;
        case KEY_PPAGE:
        case KEY_NPAGE: {
            int rows = screen_log_rows(COLS, LINES, w->snap.n_groups);
            int page = rows > 1 ? rows - 1 : 1;
            scroll_log(&w->opt, &w->snap, ch == KEY_PPAGE ? page : -page);
            dirty = 1;
            break;
        }
        case KEY_MOUSE:
            mouse_on_run(l, &w->snap, &w->opt, &prompt, mouse, mouse_x, mouse_y);
            dirty = 1;
            break;
        case KEY_END:
            w->opt.log_scroll = 0;
            dirty = 1;
            break;
        case 'q':
        case 'Q':
            asking = 1;
            dirty = 1;
            break;
        case 'd':
            end = END_DETACH;
            break;
        case KEY_RESIZE:
            /* curses's idea of the screen is stale after a resize:
             * w->repaint everything */
            clearok(curscr, TRUE);
            w->repaint = 1;
            dirty = 1;
            break;
        default:
            break;
        }
        if (end == END_DETACH)
            break;
        int got = gone ? 0 : link_snapshot(l, &w->snap);
        if (got < 0 || (!gone && !l->r && all_stopped(&w->snap))) {
            /* the run ended under us (finished elsewhere, stopped by a
             * client): w->shown, with why, until a key leaves */
            gone = 1;
            snprintf(gone_why, sizeof gone_why, "%s", l->r ? remote_why(l->r) :
                     "the run was stopped by a client (mneme ctl or attach)");
            dirty = 1;
        }
        if (got > 0) {
            /* scrolled back: keep the same lines in view as new ones come */
            if (w->opt.log_scroll > 0 && w->snap.n_logged > logged)
                w->opt.log_scroll = screen_log_clamp(
                    w->opt.log_scroll + (int)(w->snap.n_logged - logged), w->snap.n_log,
                    screen_log_rows(COLS, LINES, w->snap.n_groups));
            /* an error among the new lines stays in the footer: the log
             * scrolls it away in seconds */
            unsigned long fresh = w->snap.n_logged - logged;
            for (int i = fresh < (unsigned long)w->snap.n_log ? w->snap.n_log - (int)fresh : 0;
                 i < w->snap.n_log; i++)
                if (strstr(w->snap.log[i], "error"))
                    snprintf(error, sizeof error, "%s", w->snap.log[i] + (strlen(w->snap.log[i]) > 9 ? 9 : 0));
            logged = w->snap.n_logged;
            dirty |= 2;        /* new data: at the slower rate */
        }
        if (w->canvas.w != COLS || w->canvas.h != LINES) {
            canvas_free(&w->canvas);
            if (canvas_init(&w->canvas, COLS, LINES, utf8) < 0) {
                end = END_FAILED;
                break;
            }
            dirty = 1;
        }
        double now = now_s();
        if (prompt.status[0] && now > prompt.status_until) {
            prompt.status[0] = 0;
            dirty = 1;
        }
        if (((dirty & 1) && now - last_draw >= FRAME_S) ||
            ((dirty & 2) && now - last_draw >= DATA_FRAME_S)) {
            w->opt.prompt = prompt.active ? prompt.text : NULL;
            /* a pause nobody asked for (divergence, a policy error, a
             * failed checkpoint) keeps its reason in the footer */
            const SnapBranch *fb = w->snap.n_branches > 0 ? &w->snap.branches[w->snap.followed] : NULL;
            const char *why = fb && fb->state == TS_PAUSED && fb->error_pause && fb->message[0] ?
                              fb->message : NULL;
            if (fb && fb->state == TS_FINISHED)
                why = "finished: here for review; :fork NAME @STEP goes on from a checkpoint";
            if (gone) {
                snprintf(gone_line, sizeof gone_line, "%s; q leaves", gone_why);
                why = gone_line;
            }
            w->opt.status = asking ? (l->r ? leave_question : quit_question) :
                         prompt.status[0] ? prompt.status : error[0] ? error : why;
            screen_draw(&w->canvas, &w->snap, &w->opt);
            blit(&w->canvas, &w->shown, theme, w->colour, w->repaint);
            w->repaint = 0;
            if (prompt.active) {
                move(LINES - 1, 1 + (int)prompt.cursor);
                curs_set(1);
                refresh();
            } else
                curs_set(0);
            last_draw = now;
            dirty = 0;
        }
    }
    return end;
}

/* A bad theme is refused before anything is created or resumed. */
static int pick_theme(Theme *theme, const char *name, const Experiment *x)
{
    MnError e;
    if (!name && x)
        name = theme_choice(x);
    if (name && theme_load(theme, name, &e) < 0) {
        fprintf(stderr, "mneme: theme: %s\n", e.msg);
        return -1;
    }
    return 0;
}

/* The theme of a run that named none on the command line: its
 * experiment's (checked when it was read; the file may have gone since). */
static void theme_of_run(Theme *theme, const Experiment *x, char *warning, size_t n)
{
    MnError e;
    if (!x || theme_load(theme, theme_choice(x), &e) < 0) {
        if (x)
            snprintf(warning, n, "warning: theme: %s; using the default", e.msg);
        theme_default(theme);
    }
}

/* The run goes on in a process of its own: what this one trained is in
 * the checkpoint just written, and the background one resumes from it. */
static int hand_over(const char *dir)
{
    char *args[] = { "--resume", (char *)dir };
    return detach_run(2, args, dir);
}

int ui_main(const Experiment *x, const char *out_dir, const char *theme_name,
            const TrainerOptions *study)
{
    Theme theme;
    MnError e;
    Experiment resumed;
    Session w;
    Link l;
    int status = 0;

    if (!usable_terminal("mneme run --headless EXPERIMENT.cfg"))
        return 2;
    /* LC_CTYPE only: libconfig parses floats under LC_NUMERIC. */
    setlocale(LC_CTYPE, "");
    if (pick_theme(&theme, theme_name, x) < 0)
        return 2;
    catch_signals();
    memset(&l, 0, sizeof l);
    l.dir = out_dir;
    TrainerOptions to = { .restore_states = 1 };
    if (study) {
        to.forks = study->forks;
        to.n_forks = study->n_forks;
    }
    if (!(l.t = trainer_open(x, out_dir, x ? NULL : &resumed, x && !study ? NULL : &to, &e))) {
        fprintf(stderr, "mneme: %s\n", e.msg);
        return 2;
    }
    /* other terminals may attach to this run too */
    if (!(l.serve = serve_start(l.t, out_dir, &e))) {
        char line[sizeof e.msg + 80];
        snprintf(line, sizeof line, "warning: no control socket (mneme attach cannot reach this run): %s", e.msg);
        trainer_log(l.t, line);
    }
    char warning[sizeof e.msg + 64] = "";
    if (!theme_name && !x)
        theme_of_run(&theme, &resumed, warning, sizeof warning);
    if (session_open(&w, &theme, &l) < 0) {
        serve_stop(l.serve, "the workbench could not start");
        trainer_stop(l.t);
        return 2;
    }
    if (warning[0])
        link_log(&l, &w.snap, warning);
    if (study && study->n_forks > 0)
        w.opt.view = VIEW_COMPARE;
    Ending end = session_run(&w, &l);
    const int away = end == END_DETACH || end == END_HANGUP;
    serve_stop(l.serve, away ? "the run moves to a background process; attach again in a moment"
                             : end == END_GONE ? "the run was stopped"
                                               : "the workbench stopped the run (checkpointed)");
    /* Say what is happening while the trainer finishes its step and
     * writes the checkpoint. */
    session_say(&w, away ? "checkpointing; the run goes on in the background..."
                         : "checkpointing and quitting...");
    if (trainer_stop(l.t))
        status = 1;
    if (end == END_FAILED)
        status = 1;
    session_close(&w);
    /* the run's own step, whichever branch was followed at the end */
    const SnapBranch *m = w.snap.n_branches > 0 ? &w.snap.branches[0] : NULL;
    const int finished = m && m->state == TS_FINISHED;
    if (away && !finished && status == 0) {
        if (end == END_HANGUP)
            fprintf(stderr, "mneme: the terminal went away; the run goes on in the background\n");
        status = hand_over(out_dir);
    } else if (end == END_HANGUP) {
        fprintf(stderr, "mneme: the terminal went away; checkpointed; continue with: "
                "mneme --resume %s (headless: mneme run --resume %s)\n", out_dir, out_dir);
        status = 1;
    } else if (end == END_SIGNAL) {
        fprintf(stderr, "mneme: stopped by signal %d; continue with: mneme --resume %s "
                "(headless: mneme run --resume %s)\n", (int)stop_signal, out_dir, out_dir);
        status = 1;
    } else if (end == END_GONE) {
        fprintf(stderr, "mneme: the run was stopped by a client; continue with: mneme --resume %s\n",
                out_dir);
    } else if (status == 0 && m && !finished)
        fprintf(stderr, "mneme: quit at %s step %ld; continue in the workbench with: mneme --resume %s "
                "(headless: mneme run --resume %s)\n", m->phase, m->step, out_dir, out_dir);
    snapshot_free(&w.snap);
    return status;
}

int ui_attach(const char *run_dir, const char *theme_name, int read_only)
{
    Theme theme;
    MnError e;
    Experiment x;
    Session w;
    Link l;
    char path[4200];
    setlocale(LC_CTYPE, "");
    if (pick_theme(&theme, theme_name, NULL) < 0)
        return 2;
    memset(&l, 0, sizeof l);
    l.read_only = read_only;
    l.dir = run_dir;
    /* whether the run is live says more than whether this is a terminal */
    if (!(l.r = remote_open(run_dir, "workbench", read_only, 10.0, &e))) {
        fprintf(stderr, "mneme attach: %s\n", e.msg);
        return 3;
    }
    char instead[4200];
    snprintf(instead, sizeof instead, "mneme ctl %s status (or pause, set, stop, ...)", run_dir);
    if (!usable_terminal(instead)) {
        remote_close(l.r);
        return 2;
    }
    catch_signals();
    char warning[sizeof e.msg + 64] = "";
    snprintf(path, sizeof path, "%s/experiment.cfg", run_dir);
    if (!theme_name)
        theme_of_run(&theme, experiment_load(&x, path, NULL, 0, &e) == 0 ? &x : NULL, warning,
                     sizeof warning);
    if (session_open(&w, &theme, &l) < 0) {
        remote_close(l.r);
        return 2;
    }
    if (warning[0])
        link_log(&l, &w.snap, warning);
    Ending end = session_run(&w, &l);
    int status = 0;
    if (end == END_QUIT) {
        /* the run checkpoints and stops; its bye says when */
        Command q;
        char err[512];
        memset(&q, 0, sizeof q);
        q.kind = CMD_QUIT;
        if (link_post(&l, &q, err, sizeof err) < 0) {
            session_close(&w);
            fprintf(stderr, "mneme attach: %s\n", err);
            remote_close(l.r);
            snapshot_free(&w.snap);
            return 1;
        }
        session_say(&w, "stopping the run: checkpointing...");
        for (int i = 0; i < 600 && remote_poll(l.r, &w.snap) >= 0; i++) {
            struct pollfd p = { remote_fd(l.r), POLLIN, 0 };
            poll(&p, 1, 100);
        }
    }
    session_close(&w);
    const char *why = remote_why(l.r);
    if (end == END_QUIT)
        fprintf(stderr, "mneme attach: %s\n", why[0] ? why : "the run was asked to stop");
    else if (end == END_GONE)
        fprintf(stderr, "mneme attach: %s\n", why);
    else if (end == END_FAILED)
        status = 1;
    else
        fprintf(stderr, "mneme attach: left %s training%s; attach again with: mneme attach %s\n",
                run_dir, end == END_HANGUP ? " (the terminal went away)" : "", run_dir);
    remote_close(l.r);
    snapshot_free(&w.snap);
    return status;
}
