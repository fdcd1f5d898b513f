#include "prompt.h"

int prompt_present(const Model *m)
{
    return m->prompt_group >= 0 || m->prefix_group >= 0;
}

int prompt_enabled(const Model *m)
{
    return m->virtual_on;
}

int prompt_set_enabled(Model *m, int on)
{
    int was = prompt_enabled(m);
    if (prompt_present(m))
        m->virtual_on = on != 0;
    return was;
}
