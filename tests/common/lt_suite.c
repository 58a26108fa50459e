/* lorac tests — the shared Check runner (see lt_suite.h). */
#include "common/lt_suite.h"

#include <stdio.h>

int lt_run_suite(Suite *s) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed;
}
