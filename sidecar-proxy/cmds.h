/*
 * cmds.h - bottle-proxy's helper subcommands, besides the sidecar itself
 * (proxy_main.c dispatches on the first argument).
 *
 *   bottle-proxy scan [--max-bytes N] [--label TEXT] [FILE|-]      cmd_scan.c
 *   bottle-proxy connect [--proxy HOST:PORT] [--token-file FILE] HOST PORT
 *                                                                 cmd_connect.c
 *
 * Each takes the arguments after its name (argv[0] is the subcommand) and
 * returns the process exit status; messages go to stderr, prefixed
 * "bottle-proxy <subcommand>: ".  Neither ever prints a secret: scan names
 * detectors, never matched text; connect never prints the token, which it
 * reads from a file and never takes on the command line.
 */
#ifndef BOTTLED_CMDS_H
#define BOTTLED_CMDS_H

/*
 * The sidecar's credential detectors (lib/detectors.rules) over one input
 * (FILE, or stdin when absent or "-"), read whole up to --max-bytes
 * (default SCAN_MAX_DEFAULT).  Exit 0: nothing found; 1: found, one line
 * "<label>: <detector>" on stdout per detector that matched (in the order
 * of its first match; label defaults to FILE, or "stdin"); 2: usage error,
 * unreadable input, or input over the cap (the message names the cap).
 */
#define SCAN_MAX_DEFAULT ((unsigned long long)16 << 20)
int cmd_scan(int argc, char **argv);

/*
 * ssh's ProxyCommand through the sidecar's raw tunnel (tunnel.h): sends
 * "CONNECT HOST:PORT HTTP/1.1" to the proxy (default CONNECT_PROXY_DEFAULT)
 * with "Proxy-Authorization: Bearer <token>" when --token-file is given
 * (the file's first line), and on a 2xx answer relays stdin to the
 * connection and the connection to stdout until both are closed; stdin's
 * EOF becomes shutdown(SHUT_WR), reading goes on.  Exit 0 after a clean
 * end; 1: the proxy cannot be reached, answered non-2xx (its status line
 * and reason on stderr) or the connection failed; 2: usage error or an
 * unusable token file.
 */
#define CONNECT_PROXY_DEFAULT "proxy:9099"
int cmd_connect(int argc, char **argv);

#endif
