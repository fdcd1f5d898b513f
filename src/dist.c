#include "dist.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

static void dist_defaults(Dist *d)
{
    const char *overlap = getenv("MNEME_OVERLAP");
    memset(d, 0, sizeof *d);
    d->size = 1;
    d->overlap = !(overlap && strcmp(overlap, "0") == 0);
}

void dist_rank_folder(const Dist *d, const char *tag, char *out, size_t n)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(out, n, "%s/mneme-rank%d-%ld%s%s", tmp && *tmp ? tmp : "/tmp", d->rank,
             (long)getpid(), tag ? "-" : "", tag ? tag : "");
}

int dist_any_failed(const Dist *d, int failed)
{
    MnError e;
    double v = failed;
    if (d->size > 1 && dist_sum_doubles(d, &v, 1, &e) < 0) {
        fprintf(stderr, "mneme: rank %d: %s\n", d->rank, e.msg);
        dist_abort(d, 1);
    }
    return v > 0;
}

#ifndef HAVE_MPI

int dist_init(Dist *d, int *argc, char ***argv, MnError *e)
{
    (void)argc;
    (void)argv;
    (void)e;
    dist_defaults(d);
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

int dist_sum_floats_beside(Dist *d, float *buf, size_t n, const atomic_int *busy, MnError *e)
{
    (void)busy;
    return dist_sum_floats(d, buf, n, e);
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
    dist_defaults(d);
    if (!launched())
        return 0;
    /* the trainer thread makes the calls, and the gradients' sum thread
     * while a backward pass runs (gradsync.h): one thread at a time */
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

static void sleep_s(double s)
{
    struct timespec t = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    while (nanosleep(&t, &t) != 0)
        ;
}

/* While *busy: polls with short sleeps between them, for MPI's wait
 * spins a core, which a thread beside the backward pass's workers would
 * take from them. */
static void poll_nap(const atomic_int *busy)
{
    if (busy && atomic_load_explicit(busy, memory_order_relaxed))
        sleep_s(50e-6);
}

/* Waits for n requests: MPI's wait, or polls (nap). */
static int wait_all(int n, MPI_Request *rq, const atomic_int *nap)
{
    if (!nap)
        return MPI_Waitall(n, rq, MPI_STATUSES_IGNORE);
    for (int done = 0, rc;;) {
        if ((rc = MPI_Testall(n, rq, &done, MPI_STATUSES_IGNORE)) != MPI_SUCCESS || done)
            return rc;
        poll_nap(nap);
    }
}

/* Both halves of a ring message: MPI's wait, or polls (nap). */
static int exchange(const float *send, int cs, int right, float *recv, int cr, int left,
                    const atomic_int *nap)
{
    if (!nap)
        return MPI_Sendrecv(send, cs, MPI_FLOAT, right, 7, recv, cr, MPI_FLOAT, left, 7,
                            MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Request rq[2];
    int rc = MPI_Irecv(recv, cr, MPI_FLOAT, left, 7, MPI_COMM_WORLD, &rq[0]);
    if (rc != MPI_SUCCESS)
        return rc;
    if ((rc = MPI_Isend(send, cs, MPI_FLOAT, right, 7, MPI_COMM_WORLD, &rq[1])) != MPI_SUCCESS) {
        MPI_Cancel(&rq[0]);
        MPI_Request_free(&rq[0]);
        return rc;
    }
    return wait_all(2, rq, nap);
}

/* One message of a ring step: n floats to the right, n' from the left,
 * in pieces that an int counts. */
static int ring_step(const Dist *d, const float *send, size_t ns, float *recv, size_t nr,
                     const atomic_int *nap, MnError *e)
{
    const int right = (d->rank + 1) % d->size, left = (d->rank + d->size - 1) % d->size;
    const size_t piece = (size_t)1 << 28;
    for (size_t done_s = 0, done_r = 0; done_s < ns || done_r < nr;) {
        int cs = (int)(ns - done_s < piece ? ns - done_s : piece);
        int cr = (int)(nr - done_r < piece ? nr - done_r : piece);
        int rc = exchange(send + done_s, cs, right, recv + done_r, cr, left, nap);
        if (rc != MPI_SUCCESS)
            return mpi_fail(e, "sendrecv", rc);
        if (d->link_bits_per_s > 0.0)
            sleep_s(d->link_latency_s + 32.0 * (double)(cs > cr ? cs : cr) / d->link_bits_per_s);
        done_s += (size_t)cs;
        done_r += (size_t)cr;
    }
    return 0;
}

/* Floats of each rank's share that one round of the reduce-scatter moves:
 * the receive buffer is (ranks - 1) of these. */
#define ROUND_FLOATS ((size_t)1 << 20)

static int sum_floats(Dist *d, float *buf, size_t n, const atomic_int *nap, MnError *e)
{
    const int p = d->size, me = d->rank;
    if (p < 2 || n == 0)
        return 0;
    double t0 = now_s();
    size_t most = n / (size_t)p + 1, slot = most < ROUND_FLOATS ? most : ROUND_FLOATS;
    size_t want = (size_t)(p - 1) * slot;
    if (want > d->scratch_n) {
        float *grown = realloc(d->scratch, want * sizeof *grown);
        if (!grown)
            return mn_fail(e, "out of memory for the gradients' sum");
        d->scratch = grown;
        d->scratch_n = want;
    }
    MPI_Request *rq = malloc(2 * (size_t)p * sizeof *rq);
    if (!rq)
        return mn_fail(e, "out of memory for the gradients' sum");
#define LO(k) (n * (size_t)(k) / (size_t)p)
#define HI(k) (n * (size_t)((k) + 1) / (size_t)p)
    int rc = MPI_SUCCESS;
    /* Reduce-scatter: share k is rank k's to sum, and every rank sends it
     * its part; rank k adds them in rank order (rank 0's + rank 1's + …),
     * the order in which one process adds its workers' buffers, so that
     * ranks of one thread give the numbers of one process of as many
     * threads. In rounds of ROUND_FLOATS, which bound the buffer. */
    for (size_t off = 0; off < most; off += slot) {   /* as many rounds on every rank */
        int nr = 0;
        size_t sent = 0, got = 0;
        for (int q = 0; q < p && rc == MPI_SUCCESS; q++) {
            size_t len_q = HI(q) - LO(q), len_me = HI(me) - LO(me);
            if (q == me)
                continue;
            float *into = d->scratch + (size_t)(q < me ? q : q - 1) * slot;
            if (off < len_me) {
                int c = (int)(len_me - off < slot ? len_me - off : slot);
                rc = MPI_Irecv(into, c, MPI_FLOAT, q, 8, MPI_COMM_WORLD, &rq[nr++]);
                got += (size_t)c;
            }
            if (rc == MPI_SUCCESS && off < len_q) {
                int c = (int)(len_q - off < slot ? len_q - off : slot);
                rc = MPI_Isend(buf + LO(q) + off, c, MPI_FLOAT, q, 8, MPI_COMM_WORLD, &rq[nr++]);
                sent += (size_t)c;
            }
        }
        if (rc == MPI_SUCCESS)
            rc = wait_all(nr, rq, nap);
        if (rc != MPI_SUCCESS)
            break;
        if (d->link_bits_per_s > 0.0)
            sleep_s(d->link_latency_s + 32.0 * (double)(sent > got ? sent : got) / d->link_bits_per_s);
        size_t len_me = HI(me) - LO(me), m = off < len_me ? len_me - off : 0;
        if (m > slot)
            m = slot;
        float *restrict own = buf + LO(me) + off;
        for (size_t i = 0; i < m; i++) {
            float acc = me == 0 ? own[i] : d->scratch[i];
            for (int q = 1; q < p; q++)
                acc += q == me ? own[i] : d->scratch[(size_t)(q < me ? q : q - 1) * slot + i];
            own[i] = acc;
        }
    }
    free(rq);
    if (rc != MPI_SUCCESS)
        return mpi_fail(e, "sum", rc);
    /* Allgather: the finished shares go round the ring once. */
    for (int s = 0; s < p - 1 && rc == 0; s++) {
        int ks = ((me - s) % p + p) % p, kr = ((me - s - 1) % p + p) % p;
        rc = ring_step(d, buf + LO(ks), HI(ks) - LO(ks), buf + LO(kr), HI(kr) - LO(kr), nap, e);
    }
#undef LO
#undef HI
    d->reduce_s += now_s() - t0;
    d->reduces++;
    return rc;
}

int dist_sum_floats(Dist *d, float *buf, size_t n, MnError *e)
{
    return sum_floats(d, buf, n, NULL, e);
}

int dist_sum_floats_beside(Dist *d, float *buf, size_t n, const atomic_int *busy, MnError *e)
{
    return sum_floats(d, buf, n, busy, e);
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
