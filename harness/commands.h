/* The lockstep subcommands. Each returns the process exit code: 0 ok, 1 divergence
 * found, 2 bad input or internal error (message already printed to stderr). */
#ifndef LS_COMMANDS_H
#define LS_COMMANDS_H

int ls_cmd_score(int argc, char **argv);
int ls_cmd_run(int argc, char **argv);
int ls_cmd_gate(int argc, char **argv);
int ls_cmd_analyse(int argc, char **argv);
int ls_cmd_report(int argc, char **argv);
int ls_cmd_sweep(int argc, char **argv);
int ls_cmd_merge(int argc, char **argv);
int ls_cmd_shrink(int argc, char **argv);

#endif
