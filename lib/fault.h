/*
 * fault.h - the test-only crash hook (BOTTLED_FAULT_AT=N).
 *
 * Every external side effect of the reconciler passes one fault_point():
 * each mutating engine call (drivers/engine.c's wrappers), each forge
 * key add and delete (drivers/forge.c: "forge add key", "forge key added"
 * after the forge answered but before the caller records it, "forge
 * delete key"), each state
 * commit and intent (state/), each firewall change (reconciler/firewall.c).
 * In a build configured with -DBOTTLED_FAULT_HOOKS=ON, the N-th point
 * reached (counting from 1, over the whole process) kills the process with
 * SIGKILL *before* the side effect, as a crash would; BOTTLED_FAULT_COUNT=FILE
 * makes every point append one line "N WHAT" to FILE first, so a test
 * learns N_total from a clean run.  In other builds fault_point() is an
 * empty inline function and the variables are never read.
 */
#ifndef BOTTLED_FAULT_H
#define BOTTLED_FAULT_H

#ifdef BOTTLED_FAULT_HOOKS
void fault_point(const char *what);
#else
static inline void fault_point(const char *what)
{
    (void)what;
}
#endif

#endif
