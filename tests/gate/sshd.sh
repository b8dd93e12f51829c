# shellcheck shell=bash
# tests/gate/sshd.sh - the upstream sshd of the git-over-ssh tests (gate/,
# engine/t0610): key authentication only, from DIR/authorized_keys.

# sshd_config DIR LISTEN HOSTKEY [FORCECOMMAND]: prints an sshd_config
# listening on LISTEN (ADDR:PORT) with DIR/HOSTKEY, its pid file in DIR.
sshd_config() {
    cat <<CFG
ListenAddress $2
HostKey $1/$3
AuthorizedKeysFile $1/authorized_keys
PidFile $1/sshd.pid
${4:+ForceCommand $4
}StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
LogLevel VERBOSE
CFG
}
