-- 0003-gate.sql - what the git gate's deploy key lifecycle needs to remember.
--
-- deploy_keys.repo stays the manifest's repo name (the key title's last
-- part); the new columns say where the key lives and how to reach it
-- again after the manifest is gone: the forge's API root, the repository
-- path there, and the NAME of the secret holding the forge token (a name,
-- never the token).  checked_at is the last time the forge confirmed the
-- key (the slow existence check).
--
-- host_keys: SSH host keys the gate learned on first use (public keys).

ALTER TABLE deploy_keys ADD COLUMN api_root TEXT NOT NULL DEFAULT '';
ALTER TABLE deploy_keys ADD COLUMN repo_path TEXT NOT NULL DEFAULT '';
ALTER TABLE deploy_keys ADD COLUMN token_env TEXT;
ALTER TABLE deploy_keys ADD COLUMN checked_at INTEGER NOT NULL DEFAULT 0;

CREATE TABLE host_keys (
    bottle     TEXT NOT NULL,
    repo       TEXT NOT NULL,      -- the manifest's repo name
    host_key   TEXT NOT NULL,      -- "ssh-ed25519 AAAA..." as the gate reported it
    learned_at INTEGER NOT NULL,
    PRIMARY KEY (bottle, repo)
);
