#include <stdio.h>
#include "harness/commands.h"
int ls_cmd_run(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "run: WIP\n"); return 2; }
