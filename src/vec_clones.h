/* VEC_CLONES builds a function three times (AVX-512, AVX2, baseline
 * x86-64) and lets the loader pick one, so a single binary runs on any
 * x86-64 and still uses the widest vectors the CPU has. Empty for other
 * compilers and targets and in unoptimised (debug) builds. The clones may
 * differ in the last bit where they fuse multiply-adds; one machine always
 * runs the same clone, so a run still reproduces itself there. */
#ifndef MNEME_VEC_CLONES_H
#define MNEME_VEC_CLONES_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__OPTIMIZE__) && \
    defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define VEC_CLONES \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define HAVE_VEC_CLONES 1
#endif
#endif
#ifndef VEC_CLONES
#define VEC_CLONES
#endif

#endif
