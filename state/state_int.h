/*
 * state_int.h - what the files of state/ share; not for other modules.
 */
#ifndef BOTTLED_STATE_INT_H
#define BOTTLED_STATE_INT_H

#include <sqlite3.h>

#include "state.h"

struct buf;

struct state {
    char *dir;
    int dirfd;  /* O_DIRECTORY, for every *at() call */
    int lockfd; /* -1 unless STATE_EXCLUSIVE */
    enum state_mode mode;
    sqlite3 *db;
    int schema_version;
    int in_tx;
    char instance[STATE_INSTANCE_ID_LEN + 1];
    uint8_t hmac_key[STATE_HMAC_KEY_LEN];
};

/* lock.c: flock the lock file of dirfd; BD_E_LOCKED names the holder. */
int state_lock(int dirfd, const char *dir, int *ret_fd, struct buf *why);
void state_unlock(int fd);

/* migrate.c: opens state.db per mode and brings it to the latest schema. */
int state_db_open(struct state *st, int busy_timeout_ms, struct buf *why);

/* Maps an SQLite result code to a bd_err. */
int state_sqlite_err(int rc);

/*
 * Writes data to dirfd/name (mode 0600) through a temporary file, fsync
 * and rename; with exclusive set, fails with BD_E_EXISTS instead of
 * replacing an existing file (link(2), so racing creators agree).
 */
int state_write_file(int dirfd, const char *name, const void *data, size_t len, int exclusive);

/* Now, in Unix seconds. */
int64_t state_now(void);

#endif
