-- 0002: what `bottled status` shows live: the watcher at work, the trigger
-- and duration of every pass, and each bottle's last pass.

-- When the last pass that worked on the bottle ended (Unix seconds), and how
-- long the bottle's own work took in it (ms; 0 when there was nothing to do).
ALTER TABLE bottles ADD COLUMN last_pass_at INTEGER;
ALTER TABLE bottles ADD COLUMN last_pass_ms INTEGER;

-- What started a pass (watch: start, change, resync, hup, ...; else the
-- command: reconcile, gc) and its wall time in ms (NULL while running).
ALTER TABLE passes ADD COLUMN trigger TEXT;
ALTER TABLE passes ADD COLUMN duration_ms INTEGER;

-- The one `bottled watch` of this state dir (it holds the lock), as it last
-- said: one row, rewritten at each change of activity.  A row whose process
-- is gone (stopped_at NULL but no such pid) is a watcher that died.
CREATE TABLE watcher (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    pid         INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,  -- Unix seconds
    backend     TEXT NOT NULL,     -- fswatch, inotify
    dir         TEXT NOT NULL,     -- the watched directory, resolved
    activity    TEXT NOT NULL
                CHECK (activity IN ('idle', 'settling', 'deferred', 'pass', 'stopped')),
    detail      TEXT,              -- the running pass's trigger, why a pass is deferred
    since       INTEGER NOT NULL,  -- the activity began (Unix seconds)
    next_resync INTEGER,           -- the next drift pass is due (Unix seconds)
    passes      INTEGER NOT NULL DEFAULT 0
);
