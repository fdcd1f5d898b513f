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

#include "trainer.h"
#include "ui/canvas.h"
#include "ui/command.h"
#include "ui/screen.h"
#include "ui/theme.h"

#define FRAME_S 0.05           /* at most ~20 redraws a second for keys */
#define DATA_FRAME_S 0.1       /* and ~10 for new training data */
#define KEY_WAIT_MS 50         /* keys are answered within this */
#define STATUS_S 5.0           /* how long a message stays in the footer */
#define HISTORY 16
#define WHEEL_LINES 3          /* log or page lines a wheel notch scrolls */

static volatile sig_atomic_t stop_signal;
static const char quit_question[] = "quit? checkpoint and quit: y / n";
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

static int usable_terminal(void)
{
    const char *term = getenv("TERM");
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fprintf(stderr, "mneme: not a terminal: the workbench needs one; "
                "use mneme run --headless EXPERIMENT.cfg\n");
        return 0;
    }
    if (!term || !*term || strcmp(term, "dumb") == 0) {
        fprintf(stderr, "mneme: TERM=%s cannot show the workbench; "
                "use mneme run --headless EXPERIMENT.cfg\n", term ? term : "");
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
static void follow_branch(Trainer *t, const Snapshot *snap, int i, Prompt *p)
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
    trainer_post(t, &uc.cmd);
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
static void mouse_on_run(Trainer *t, const Snapshot *snap, ScreenOptions *opt, Prompt *p,
                         MouseAction m, int x, int y)
{
    ScreenHit hit = screen_hit(COLS, LINES, snap, opt, x, y);
    if (m != MOUSE_CLICK) {
        if (hit.kind == HIT_LOG)
            scroll_log(opt, snap, wheel_back(m));
        return;
    }
    if (hit.kind == HIT_BRANCH)
        follow_branch(t, snap, hit.index, p);
    else if (hit.kind == HIT_LAYER)
        offer_layer_command(p, snap, hit);
}

/* Runs a parsed command; returns 1 when it asks to quit. */
static int run_command(Trainer *t, const UiCommand *uc, Theme *theme, int *colour, int *repaint,
                       ScreenOptions *opt, Prompt *p)
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
    case UC_TRAINER:
        if (uc->cmd.kind == CMD_QUIT)
            return 1;
        trainer_post(t, &uc->cmd);
        return 0;
    }
    return 0;
}

/* A key while the `:` line is open; returns 1 when a command asks to quit. */
static int prompt_key(Prompt *p, int ch, Trainer *t, Theme *theme, int *colour, int *repaint,
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
        return run_command(t, &uc, theme, colour, repaint, opt, p);
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

int ui_main(const Experiment *x, const char *out_dir, const char *theme_name)
{
    Prompt prompt;
    Theme theme;
    MnError e;
    Trainer *t;
    Experiment resumed;
    Snapshot snap;
    Canvas canvas = { 0 }, shown = { 0 };
    ScreenOptions opt = { .view = VIEW_ACCURACY };
    SCREEN *scr;
    struct sigaction sa;
    int colour, status = 0, utf8, dirty = 1, asking = 0, hangup = 0;
    int repaint = 1;           /* the next blit copies every cell */
    int mouse_x = 0, mouse_y = 0;
    unsigned long logged = 0;  /* snap.n_logged when last seen */
    char error[SNAP_LINE] = "";  /* the last error logged, until a key dismisses it */
    double last_draw = 0;

    if (!usable_terminal())
        return 2;
    /* LC_CTYPE only: libconfig parses floats under LC_NUMERIC. */
    setlocale(LC_CTYPE, "");
    utf8 = locale_is_utf8();
    /* A bad theme is refused before anything is created or resumed. */
    if (!theme_name && x)
        theme_name = theme_choice(x);
    if (theme_name && theme_load(&theme, theme_name, &e) < 0) {
        fprintf(stderr, "mneme: theme: %s\n", e.msg);
        return 2;
    }

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    if (!(t = x ? trainer_start(x, out_dir, &e) : trainer_resume(out_dir, &resumed, &e))) {
        fprintf(stderr, "mneme: %s\n", e.msg);
        return 2;
    }
    if (!theme_name) {
        /* resumed: the run's experiment names it (checked when it was
         * read; the file may have gone since) */
        theme_name = theme_choice(&resumed);
        if (theme_load(&theme, theme_name, &e) < 0) {
            char line[sizeof e.msg + 64];
            snprintf(line, sizeof line, "warning: theme: %s; using the default", e.msg);
            trainer_log(t, line);
            theme_default(&theme);
        }
    }
    memset(&snap, 0, sizeof snap);
    memset(&prompt, 0, sizeof prompt);

    if (!(scr = newterm(NULL, stdout, stdin))) {
        fprintf(stderr, "mneme: cannot use TERM=%s; use mneme run --headless\n",
                getenv("TERM"));
        trainer_stop(t);
        return 2;
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
    colour = setup_colours(&theme);
    if (theme.warning[0]) {
        char line[sizeof theme.name + sizeof theme.warning + 64];
        snprintf(line, sizeof line, "warning: theme %s: unknown keys ignored: %s",
                 theme.name, theme.warning);
        trainer_log(t, line);
    }

    for (;;) {
        errno = 0;
        int ch = getch();
        int err = errno;
        Command cmd;
        MouseAction mouse = MOUSE_NONE;
        memset(&cmd, 0, sizeof cmd);
        if (stop_signal)
            break;
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
            hangup = 1;
            break;
        }
        if (asking && ch != ERR && ch != KEY_RESIZE) {
            /* quit? y quits, anything else cancels */
            asking = 0;
            dirty = 1;
            if (ch == 'y' || ch == 'Y')
                break;
            say(&prompt, "quit cancelled");
            ch = ERR;
        }
        if (opt.help && ch != ERR && ch != KEY_RESIZE) {
            /* the help page is modal: it scrolls and closes, and nothing
             * reaches the run underneath */
            int max = screen_help_scroll_max(COLS, LINES);
            if (ch == '?' || ch == 27 || ch == 'q' || ch == 'Q' || ch == '\n' || ch == '\r')
                opt.help = 0;
            else if (ch == KEY_DOWN || ch == 'j')
                opt.help_scroll++;
            else if (ch == KEY_UP || ch == 'k')
                opt.help_scroll--;
            else if (ch == KEY_NPAGE || ch == ' ')
                opt.help_scroll += LINES > 6 ? LINES - 6 : 1;
            else if (ch == KEY_PPAGE)
                opt.help_scroll -= LINES > 6 ? LINES - 6 : 1;
            else if (ch == KEY_HOME)
                opt.help_scroll = 0;
            else if (ch == KEY_END)
                opt.help_scroll = max;
            else if (ch == KEY_MOUSE)
                opt.help_scroll -= wheel_back(mouse);
            if (opt.help_scroll > max)
                opt.help_scroll = max;
            if (opt.help_scroll < 0)
                opt.help_scroll = 0;
            dirty = 1;
            ch = ERR;
        }
        if (opt.log_page && !opt.help && !prompt.active && ch != ERR && ch != KEY_RESIZE) {
            /* the log page is modal too: its own keys only, so reading
             * never pauses or quits the run underneath */
            int rows = LINES - 4 > 1 ? LINES - 4 : 1;
            int n = screen_log_page_lines(&snap, opt.log_page_errors);
            if (ch == 'L' || ch == 27 || ch == 'q' || ch == 'Q')
                opt.log_page = 0;
            else if (ch == 'e' || ch == 'E') {
                opt.log_page_errors = !opt.log_page_errors;
                opt.log_page_scroll = 0;
            } else if (ch == KEY_UP || ch == 'k')
                opt.log_page_scroll++;
            else if (ch == KEY_DOWN || ch == 'j')
                opt.log_page_scroll--;
            else if (ch == KEY_PPAGE)
                opt.log_page_scroll += rows;
            else if (ch == KEY_NPAGE || ch == ' ')
                opt.log_page_scroll -= rows;
            else if (ch == KEY_HOME)
                opt.log_page_scroll = n;
            else if (ch == KEY_END)
                opt.log_page_scroll = 0;
            else if (ch == KEY_RIGHT || ch == 'l')
                opt.log_page_x += 8;
            else if (ch == KEY_LEFT || ch == 'h')
                opt.log_page_x = opt.log_page_x > 8 ? opt.log_page_x - 8 : 0;
            else if (ch == KEY_MOUSE)
                opt.log_page_scroll += wheel_back(mouse);
            if (opt.log_page_scroll > n - rows)
                opt.log_page_scroll = n - rows;
            if (opt.log_page_scroll < 0)
                opt.log_page_scroll = 0;
            if (opt.log_page_x > SNAP_LINE)
                opt.log_page_x = SNAP_LINE;
            dirty = 1;
            ch = ERR;
        }
        if (prompt.active && ch == KEY_MOUSE) {
            /* while a command is typed the wheel still reads the log; a
             * click would lose what is typed, so it does nothing */
            if (mouse != MOUSE_CLICK)
                mouse_on_run(t, &snap, &opt, &prompt, mouse, mouse_x, mouse_y);
            dirty = 1;
            ch = ERR;
        }
        if (prompt.active && ch != ERR && ch != KEY_RESIZE) {
            if (prompt_key(&prompt, ch, t, &theme, &colour, &repaint, &opt, &snap))
                break;
            dirty = 1;
            ch = ERR;
        }
        switch (ch) {
        case ' ':
            cmd.kind = CMD_PAUSE;
            trainer_post(t, &cmd);
            break;
        case 'c':
            cmd.kind = CMD_CHECKPOINT;
            trainer_post(t, &cmd);
            break;
        case 'r':
            cmd.kind = CMD_RELOAD;
            trainer_post(t, &cmd);
            break;
        case 'e':
            cmd.kind = CMD_EVALUATE;
            trainer_post(t, &cmd);
            break;
        case 'l':
            opt.view = opt.view == VIEW_LOSS ? VIEW_ACCURACY : VIEW_LOSS;
            dirty = 1;
            break;
        case 'v':
            opt.view = opt.view == VIEW_COMPARE ? VIEW_ACCURACY : VIEW_COMPARE;
            dirty = 1;
            break;
        case '\t':
            cmd.kind = CMD_FOLLOW;
            cmd.value = -1;
            trainer_post(t, &cmd);
            break;
        case 'f':
            /* the name and overrides are typed on the command line */
            open_prompt(&prompt, "fork ");
            dirty = 1;
            break;
        case '+':
        case '=':
            /* zoom in on the latest steps; - out, 0 the whole phase */
            opt.zoom = opt.zoom > 0 ? opt.zoom / 2 : snap.total_steps / 2;
            if (opt.zoom < 20)
                opt.zoom = 20;
            dirty = 1;
            break;
        case '-':
            opt.zoom = opt.zoom > 0 && opt.zoom * 2 < snap.total_steps ? opt.zoom * 2 : 0;
            dirty = 1;
            break;
        case '0':
            opt.zoom = 0;
            dirty = 1;
            break;
        case 'L':
            opt.log_page = 1;
            opt.log_page_scroll = opt.log_page_x = 0;
            dirty = 1;
            break;
        case '?':
            opt.help = 1;
            opt.help_scroll = 0;
            dirty = 1;
            break;
        case 27:
            if (opt.help) {
                opt.help = 0;
                dirty = 1;
            }
            break;
        case ':':
            open_prompt(&prompt, "");
            dirty = 1;
            break;
        case KEY_PPAGE:
        case KEY_NPAGE: {
            int rows = screen_log_rows(COLS, LINES, snap.n_groups);
            int page = rows > 1 ? rows - 1 : 1;
            scroll_log(&opt, &snap, ch == KEY_PPAGE ? page : -page);
            dirty = 1;
            break;
        }
        case KEY_MOUSE:
            mouse_on_run(t, &snap, &opt, &prompt, mouse, mouse_x, mouse_y);
            dirty = 1;
            break;
        case KEY_END:
            opt.log_scroll = 0;
            dirty = 1;
            break;
        case 'q':
        case 'Q':
            asking = 1;
            dirty = 1;
            break;
        case KEY_RESIZE:
            /* curses's idea of the screen is stale after a resize:
             * repaint everything */
            clearok(curscr, TRUE);
            repaint = 1;
            dirty = 1;
            break;
        default:
            break;
        }
        if (trainer_snapshot(t, &snap)) {
            /* scrolled back: keep the same lines in view as new ones come */
            if (opt.log_scroll > 0 && snap.n_logged > logged)
                opt.log_scroll = screen_log_clamp(
                    opt.log_scroll + (int)(snap.n_logged - logged), snap.n_log,
                    screen_log_rows(COLS, LINES, snap.n_groups));
            /* an error among the new lines stays in the footer: the log
             * scrolls it away in seconds */
            unsigned long fresh = snap.n_logged - logged;
            for (int i = fresh < (unsigned long)snap.n_log ? snap.n_log - (int)fresh : 0;
                 i < snap.n_log; i++)
                if (strstr(snap.log[i], "error"))
                    snprintf(error, sizeof error, "%s", snap.log[i] + (strlen(snap.log[i]) > 9 ? 9 : 0));
            logged = snap.n_logged;
            dirty |= 2;        /* new data: at the slower rate */
        }
        if (canvas.w != COLS || canvas.h != LINES) {
            canvas_free(&canvas);
            if (canvas_init(&canvas, COLS, LINES, utf8) < 0) {
                status = 1;
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
            opt.prompt = prompt.active ? prompt.text : NULL;
            /* a pause nobody asked for (divergence, a policy error, a
             * failed checkpoint) keeps its reason in the footer */
            const SnapBranch *fb = snap.n_branches > 0 ? &snap.branches[snap.followed] : NULL;
            const char *why = fb && fb->state == TS_PAUSED && fb->error_pause && fb->message[0] ?
                              fb->message : NULL;
            if (fb && fb->state == TS_FINISHED)
                why = "finished: here for review; :fork NAME @STEP goes on from a checkpoint";
            opt.status = asking ? quit_question : prompt.status[0] ? prompt.status :
                         error[0] ? error : why;
            screen_draw(&canvas, &snap, &opt);
            blit(&canvas, &shown, &theme, colour, repaint);
            repaint = 0;
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

    /* Say what is happening while the trainer finishes its step and
     * writes the checkpoint. */
    if (canvas.cells) {
        opt.status = "checkpointing and quitting...";
        screen_draw(&canvas, &snap, &opt);
        blit(&canvas, &shown, &theme, colour, repaint);
    }
    if (trainer_stop(t))
        status = 1;
    restore_terminal();
    delscreen(scr);
    canvas_free(&canvas);
    canvas_free(&shown);
    snapshot_free(&snap);
    if (hangup) {
        fprintf(stderr, "mneme: the terminal went away; checkpointed; continue with: "
                "mneme --resume %s (headless: mneme run --resume %s)\n", out_dir, out_dir);
        return 1;
    }
    if (stop_signal) {
        fprintf(stderr, "mneme: stopped by signal %d; continue with: mneme --resume %s "
                "(headless: mneme run --resume %s)\n", (int)stop_signal, out_dir, out_dir);
        return 1;
    }
    /* the run's own step, whichever branch was followed at the end */
    const SnapBranch *m = snap.n_branches > 0 ? &snap.branches[0] : NULL;
    if (status == 0 && m && m->state != TS_FINISHED)
        fprintf(stderr, "mneme: quit at %s step %ld; continue in the workbench with: mneme --resume %s "
                "(headless: mneme run --resume %s)\n", m->phase, m->step, out_dir, out_dir);
    return status;
}
