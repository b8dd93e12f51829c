-- 0001-initial.sql - the first schema of state.db.
--
-- The engine and the forges are the truth; this database is the
-- reconciler's memory of them.  Losing it orphans nothing: engine resources
-- are adopted again by label, deploy keys are found by title at the repos
-- listed in the plain file `repos-used` beside it, and the instance id and
-- HMAC key live outside it.
--
-- SECRETS NEVER GO IN HERE: no secret values, no tokens, no private keys,
-- no HMACs of single secrets.  Hashes stored here are of non-secret
-- canonical specs, manifest bytes and whole config generations.
--
-- Times are Unix seconds (UTC).  Applied in one transaction together with
-- `PRAGMA user_version = 1`; never edit a released migration, add the next
-- numbered file instead.

-- Every manifest file the last passes read, parsed or not.
CREATE TABLE manifests (
    path         TEXT PRIMARY KEY,
    content_hash TEXT NOT NULL,     -- sha256 hex of the file's bytes
    bottle       TEXT,              -- the bottle it declares; NULL if unparsed
    parse_error  TEXT,              -- first diagnostic; NULL when it parsed
    seen_at      INTEGER NOT NULL
);

-- One row per bottle this instance manages or still has to delete.
CREATE TABLE bottles (
    name          TEXT PRIMARY KEY,
    generation    INTEGER NOT NULL DEFAULT 0, -- bumped each time a new spec_hash is applied
    spec_hash     TEXT,                       -- hash of the applied desired state; NULL before the first apply
    manifest_hash TEXT,                       -- content hash of the manifest it came from
    config_hash   TEXT,                       -- sidecar config hash last delivered
    phase         TEXT NOT NULL DEFAULT 'Reconciling'
                  CHECK (phase IN ('Ready', 'Reconciling', 'Stalled', 'Degraded', 'Deleting')),
    reason        TEXT,
    last_error    TEXT,
    failures      INTEGER NOT NULL DEFAULT 0, -- consecutive failed passes, for the backoff
    next_retry    INTEGER,                    -- not before this time; NULL: no retry pending
    updated_at    INTEGER NOT NULL
);

-- Engine resources of a bottle, one per role (int, egr, proxy, gate, agent, work, cfg, netns).
CREATE TABLE resources (
    bottle     TEXT NOT NULL REFERENCES bottles (name) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    name       TEXT NOT NULL,     -- engine-global name, bottle-B-<role>
    engine_id  TEXT,              -- NULL until the engine answered
    spec_hash  TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (bottle, role)
);
CREATE UNIQUE INDEX resources_name ON resources (name);

-- Deploy keys at forges.  No foreign key to bottles: a key outlives its
-- bottle's row while it is being deleted at the forge.
CREATE TABLE deploy_keys (
    bottle      TEXT NOT NULL,
    forge       TEXT NOT NULL,
    repo        TEXT NOT NULL,
    key_id      TEXT,              -- the forge's id; NULL while only intended
    fingerprint TEXT NOT NULL,     -- of the public key (SHA256:...)
    state       TEXT NOT NULL CHECK (state IN ('intent', 'registered', 'deleting')),
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (bottle, forge, repo)
);

-- Every repository a deploy key was ever intended for (also in the file repos-used).
CREATE TABLE repos_used (
    forge      TEXT NOT NULL,
    api_root   TEXT NOT NULL,
    repo       TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (forge, api_root, repo)
);

-- Append-only log of what happened.
CREATE TABLE events (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    ts     INTEGER NOT NULL,
    bottle TEXT,                  -- NULL for instance-wide events
    kind   TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX events_bottle ON events (bottle, id);

-- Write-intent-before-side-effect: a row is 'pending' from just before an
-- external side effect until it is confirmed; pending rows are what the
-- next run must check against the engine or the forge.
CREATE TABLE intents (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    bottle     TEXT NOT NULL,
    action     TEXT NOT NULL,
    resource   TEXT NOT NULL,
    state      TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
    created_at INTEGER NOT NULL,
    done_at    INTEGER
);
CREATE INDEX intents_pending ON intents (id) WHERE state = 'pending';

-- Reconcile passes, for `status`.
CREATE TABLE passes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,           -- NULL: running, or the process died
    changes     INTEGER NOT NULL DEFAULT 0,
    failures    INTEGER NOT NULL DEFAULT 0,
    gc_blocked  TEXT               -- the path that made the snapshot incomplete
);

-- One-shot approvals from `bottled approve-deletes`, taken by the next pass.
CREATE TABLE approvals (
    bottle     TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);
