/* cmd_sof_test.c: placeholder until the owning room lands its command. */
#include <stdio.h>

#include "cli.h"

int cmd_sof_test(int argc, char **argv)
{
    (void)argc;
    fprintf(stderr, "fhirlake: '%s' is not available in this build yet\n", argv[0]);
    return 2;
}
