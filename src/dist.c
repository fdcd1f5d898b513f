#include "dist.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef HAVE_MPI
#include <mpi.h>
#endif

int dist_available(void)
{
#ifdef HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

#ifndef HAVE_MPI

int dist_init(Dist *d, int *argc, char ***argv, MnError *e)
{
    (void)argc;
    (void)argv;
    (void)e;
    memset(d, 0, sizeof *d);
    d->size = 1;
    return 0;
}

void dist_finish(Dist *d)
{
    (void)d;
}

void dist_abort(const Dist *d, int status)
{
    (void)d;
    exit(status);
}

int dist_sum_floats(Dist *d, float *buf, size_t n, MnError *e)
{
    (void)d, (void)buf, (void)n, (void)e;
    return 0;
}

int dist_sum_doubles(const Dist *d, double *v, int n, MnError *e)
{
    (void)d, (void)v, (void)n, (void)e;
    return 0;
}

int dist_gather_rows(const Dist *d, float *buf, int width, const int *row0, MnError *e)
{
    (void)d, (void)buf, (void)width, (void)row0, (void)e;
    return 0;
}

int dist_broadcast(const Dist *d, void *buf, size_t n, MnError *e)
{
    (void)d, (void)buf, (void)n, (void)e;
    return 0;
}

int dist_broadcast_waiting(const Dist *d, void *buf, size_t n, MnError *e)
{
    (void)d, (void)buf, (void)n, (void)e;
    return 0;
}

int dist_agree(const Dist *d, const float *buf, size_t n, int *same, MnError *e)
{
    (void)d, (void)buf, (void)n, (void)e;
    *same = 1;
    return 0;
}

#else

/* 64-bit FNV-1a of n bytes: a checksum, not a defence. */
static uint64_t fnv(const void *p, size_t n)
{
    const unsigned char *c = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ c[i]) * 1099511628211ULL;
    return h;
}

/* A launcher's environment: Open MPI's, or PMI/PMIx (Slurm's srun). */
static int launched(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

static int mpi_fail(MnError *e, const char *what, int rc)
{
    char text[MPI_MAX_ERROR_STRING];
    int n = 0;
    MPI_Error_string(rc, text, &n);
    return mn_fail(e, "MPI %s: %.*s", what, n, text);
}

int dist_init(Dist *d, int *argc, char ***argv, MnError *e)
{
    int provided = 0, rc;
    memset(d, 0, sizeof *d);
    d->size = 1;
    if (!launched())
        return 0;
    /* the trainer thread makes the calls, one thread at a time */
    if ((rc = MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided)) != MPI_SUCCESS)
        return mpi_fail(e, "init", rc);
    d->active = 1;
    if (provided < MPI_THREAD_SERIALIZED) {
        MPI_Finalize();
        d->active = 0;
        return mn_fail(e, "MPI: this MPI library cannot be called from the trainer thread "
                       "(MPI_THREAD_SERIALIZED)");
    }
    /* MPI's default stays: a failed call ends the whole job, not one rank */
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    return 0;
}

void dist_finish(Dist *d)
{
    if (d->active)
        MPI_Finalize();
    d->active = 0;
    free(d->scratch);
    d->scratch = NULL;
    d->scratch_n = 0;
}

void dist_abort(const Dist *d, int status)
{
    if (d->active && d->size > 1)
        MPI_Abort(MPI_COMM_WORLD, status);
    exit(status);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* One message of a ring step: n floats to the right, n' from the left,
 * in pieces that an int counts. */
static int ring_step(const Dist *d, const float *send, size_t ns, float *recv, size_t nr,
                     MnError *e)
{
    const int right = (d->rank + 1) % d->size, left = (d->rank + d->size - 1) % d->size;
    const size_t piece = (size_t)1 << 28;
    for (size_t done_s = 0, done_r = 0; done_s < ns || done_r < nr;) {
        int cs = (int)(ns - done_s < piece ? ns - done_s : piece);
        int cr = (int)(nr - done_r < piece ? nr - done_r : piece);
        int rc = MPI_Sendrecv(send + done_s, cs, MPI_FLOAT, right, 7, recv + done_r, cr, MPI_FLOAT,
                              left, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            return mpi_fail(e, "sendrecv", rc);
        done_s += (size_t)cs;
        done_r += (size_t)cr;
    }
    return 0;
}

int dist_sum_floats(Dist *d, float *buf, size_t n, MnError *e)
{
    const int p = d->size;
    if (p < 2 || n == 0)
        return 0;
    double t0 = now_s();
    size_t most = n / (size_t)p + 1;
    if (most > d->scratch_n) {
        float *grown = realloc(d->scratch, most * sizeof *grown);
        if (!grown)
            return mn_fail(e, "out of memory for the gradients' sum");
        d->scratch = grown;
        d->scratch_n = most;
    }
    float *in = d->scratch;
#define LO(k) (n * (size_t)(k) / (size_t)p)
#define HI(k) (n * (size_t)((k) + 1) / (size_t)p)
    int rc = 0;
    /* Reduce-scatter: at step s this rank sends share (rank - s) and adds
     * its own to the partial sum of share (rank - s - 1) that arrives, so
     * share k is summed from rank k round to rank k - 1, always so. */
    for (int s = 0; s < p - 1 && rc == 0; s++) {
        int ks = ((d->rank - s) % p + p) % p, kr = ((d->rank - s - 1) % p + p) % p;
        rc = ring_step(d, buf + LO(ks), HI(ks) - LO(ks), in, HI(kr) - LO(kr), e);
        for (size_t i = 0; rc == 0 && i < HI(kr) - LO(kr); i++)
            buf[LO(kr) + i] = in[i] + buf[LO(kr) + i];
    }
    /* Allgather: the finished shares go round once. */
    for (int s = 0; s < p - 1 && rc == 0; s++) {
        int ks = ((d->rank + 1 - s) % p + p) % p, kr = ((d->rank - s) % p + p) % p;
        rc = ring_step(d, buf + LO(ks), HI(ks) - LO(ks), buf + LO(kr), HI(kr) - LO(kr), e);
    }
#undef LO
#undef HI
    d->reduce_s += now_s() - t0;
    d->reduces++;
    return rc;
}

int dist_sum_doubles(const Dist *d, double *v, int n, MnError *e)
{
    if (d->size < 2 || n <= 0)
        return 0;
    double *all = malloc(sizeof *all * (size_t)n * (size_t)d->size);
    if (!all)
        return mn_fail(e, "out of memory");
    int rc = MPI_Allgather(v, n, MPI_DOUBLE, all, n, MPI_DOUBLE, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        free(all);
        return mpi_fail(e, "allgather", rc);
    }
    for (int i = 0; i < n; i++) {
        v[i] = all[i];
        for (int r = 1; r < d->size; r++)
            v[i] += all[(size_t)r * (size_t)n + (size_t)i];
    }
    free(all);
    return 0;
}

int dist_gather_rows(const Dist *d, float *buf, int width, const int *row0, MnError *e)
{
    if (d->size < 2)
        return 0;
    int *counts = malloc(2 * sizeof(int) * (size_t)d->size);
    if (!counts)
        return mn_fail(e, "out of memory");
    int *offs = counts + d->size;
    for (int r = 0; r < d->size; r++) {
        counts[r] = (row0[r + 1] - row0[r]) * width;
        offs[r] = row0[r] * width;
    }
    int rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, offs, MPI_FLOAT,
                            MPI_COMM_WORLD);
    free(counts);
    return rc == MPI_SUCCESS ? 0 : mpi_fail(e, "allgatherv", rc);
}

int dist_broadcast(const Dist *d, void *buf, size_t n, MnError *e)
{
    if (d->size < 2)
        return 0;
    for (size_t done = 0; done < n;) {
        int c = (int)(n - done < ((size_t)1 << 30) ? n - done : ((size_t)1 << 30));
        int rc = MPI_Bcast((char *)buf + done, c, MPI_BYTE, 0, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS)
            return mpi_fail(e, "broadcast", rc);
        done += (size_t)c;
    }
    return 0;
}

int dist_broadcast_waiting(const Dist *d, void *buf, size_t n, MnError *e)
{
    if (d->size < 2)
        return 0;
    if (n > ((size_t)1 << 30))
        return dist_broadcast(d, buf, n, e);
    MPI_Request req;
    int rc = MPI_Ibcast(buf, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD, &req);
    /* MPI's own wait spins a core; a run paused for hours must not */
    double t0 = now_s();
    for (int done = 0; rc == MPI_SUCCESS;) {
        rc = MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (done)
            break;
        if (now_s() - t0 > 0.002) {
            struct timespec nap = { 0, 1000000L };
            nanosleep(&nap, NULL);
        }
    }
    return rc == MPI_SUCCESS ? 0 : mpi_fail(e, "broadcast", rc);
}

int dist_agree(const Dist *d, const float *buf, size_t n, int *same, MnError *e)
{
    *same = 1;
    if (d->size < 2)
        return 0;
    unsigned long long h = fnv(buf, n * sizeof *buf);
    unsigned long long *all = malloc(sizeof *all * (size_t)d->size);
    if (!all)
        return mn_fail(e, "out of memory");
    int rc = MPI_Allgather(&h, 1, MPI_UNSIGNED_LONG_LONG, all, 1, MPI_UNSIGNED_LONG_LONG,
                           MPI_COMM_WORLD);
    for (int r = 1; rc == MPI_SUCCESS && r < d->size; r++)
        *same &= all[r] == all[0];
    free(all);
    return rc == MPI_SUCCESS ? 0 : mpi_fail(e, "allgather", rc);
}

#endif
