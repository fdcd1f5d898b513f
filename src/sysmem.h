/* How much memory this process can still take, so that a model too large
 * for the machine is refused with a figure instead of allocated until the
 * kernel kills the process. */
#ifndef MNEME_SYSMEM_H
#define MNEME_SYSMEM_H

/* Bytes available: the least of MemAvailable (/proc/meminfo), the
 * cgroup's memory.max less its memory.current, and RLIMIT_AS less what
 * the process maps already. MNEME_MEMORY_LIMIT (bytes, or a number with
 * K, M, G or T) replaces them all; "off" turns the check off. -1 when
 * unknown or off, -2 when MNEME_MEMORY_LIMIT is malformed. *source says
 * where the figure comes from. */
double mem_available(const char **source);

/* "8G", "512M", "1073741824": bytes; -1 when malformed. */
double mem_parse_size(const char *s);

#endif
