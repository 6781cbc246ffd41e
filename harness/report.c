/* lockstep report FILE.h5 -o DIR: an HTML page with plots of a trace or a sweep.
 *
 * The plotting lives in reports/render.py (Python, h5py, matplotlib with the Agg backend);
 * this command finds an interpreter that has those modules, prepares the textual verdict
 * (for a trace: `lockstep analyse`'s findings, passed in a file; for a sweep: its /analysis
 * group, computed and written into the file first if absent -- or, for a partial sweep,
 * passed in a file too) and runs the renderer. Exit 0 when DIR/index.html was written, 2
 * otherwise (python3, h5py or matplotlib missing, a bad input file, or the renderer
 * failing), with a message on stderr. */
#include <errno.h>
#include <hdf5.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/err.h"
#include "harness/analyse.h"
#include "harness/commands.h"
#include "ls_build.h"

/* harness/analyse.c */

static int usage(FILE *f) {
    fprintf(f, "usage: lockstep report FILE.h5 -o DIR\n"
               "  Writes DIR/index.html (self-contained: plots embedded as PNG) and the PNGs\n"
               "  for a trace (docs/trace.md) or a sweep (docs/sweeps.md). Needs python3 with\n"
               "  h5py, numpy and matplotlib (Debian: python3-h5py python3-numpy\n"
               "  python3-matplotlib). See reports/README.md.\n");
    return f == stdout ? 0 : 2;
}

/* Runs argv (argv[0] a path or a name looked up in PATH); returns the exit status, or -1
 * if it could not be run. stdout/stderr go to /dev/null when quiet. */
static int run_wait(char *const argv[], int quiet) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (quiet) {
            FILE *n = freopen("/dev/null", "w", stdout);
            FILE *m = freopen("/dev/null", "w", stderr);
            (void)n;
            (void)m;
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    if (!WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

/* The first interpreter (of /usr/bin/python3, python3) that can import what render.py
 * needs; NULL if none, with *why saying what was missing. */
static const char *find_python(const char **why) {
    static const char *const cands[] = {"/usr/bin/python3", "python3"};
    *why = "python3 not found";
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
        char *ver[] = {(char *)cands[i], "-c", "import sys", NULL};
        if (run_wait(ver, 1) != 0) continue;
        char *h5[] = {(char *)cands[i], "-c", "import h5py, numpy", NULL};
        if (run_wait(h5, 1) != 0) {
            *why = "python3 has no h5py/numpy";
            continue;
        }
        char *mpl[] = {(char *)cands[i], "-c", "import matplotlib; matplotlib.use('Agg'); "
                                               "import matplotlib.pyplot", NULL};
        if (run_wait(mpl, 1) != 0) {
            *why = "python3 has no matplotlib";
            continue;
        }
        return cands[i];
    }
    return NULL;
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* reports/render.py: in the source tree this binary was built from, else next to it. */
static int find_renderer(char *out, size_t n) {
    const char *env = getenv("LS_SOURCE_ROOT");
    if (env && *env) {
        snprintf(out, n, "%s/reports/render.py", env);
        if (file_exists(out)) return 0;
    }
    snprintf(out, n, "%s/reports/render.py", LS_SOURCE_ROOT);
    if (file_exists(out)) return 0;
    char exe[PATH_MAX];
    ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (l > 0) {
        exe[l] = 0;
        char *s = strrchr(exe, '/');
        if (s) {
            *s = 0;
            snprintf(out, n, "%s/../reports/render.py", exe);
            if (file_exists(out)) return 0;
            snprintf(out, n, "%s/../share/lockstep/reports/render.py", exe);
            if (file_exists(out)) return 0;
        }
    }
    return -1;
}

/* "lockstep-trace", "lockstep-sweep" (malloc'd), or NULL; *has_analysis for sweeps. */
static char *file_format(const char *path, int *has_analysis) {
    H5E_auto2_t of;
    void *od;
    H5Eget_auto2(H5E_DEFAULT, &of, &od);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    char *out = NULL;
    *has_analysis = 0;
    if (H5Fis_hdf5(path) > 0) {
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (f >= 0) {
            if (H5Aexists(f, "format") > 0) {
                hid_t a = H5Aopen(f, "format", H5P_DEFAULT);
                hid_t t = a >= 0 ? H5Aget_type(a) : -1;
                if (t >= 0 && H5Tget_class(t) == H5T_STRING) {
                    hid_t mt = H5Tcopy(t);
                    if (H5Tis_variable_str(t) > 0) {
                        char *v = NULL;
                        if (mt >= 0 && H5Aread(a, mt, &v) >= 0 && v) out = strdup(v);
                        if (v) H5free_memory(v);
                    } else {
                        size_t n = H5Tget_size(t);
                        char *v = calloc(n + 1, 1);
                        if (v && mt >= 0 && H5Aread(a, mt, v) >= 0) out = v;
                        else free(v);
                    }
                    if (mt >= 0) H5Tclose(mt);
                }
                if (t >= 0) H5Tclose(t);
                if (a >= 0) H5Aclose(a);
            }
            *has_analysis = H5Lexists(f, "analysis", H5P_DEFAULT) > 0;
            H5Fclose(f);
        }
    }
    H5Eclear2(H5E_DEFAULT);
    H5Eset_auto2(H5E_DEFAULT, of, od);
    return out;
}

int ls_cmd_report(int argc, char **argv) {
    const char *path = NULL, *dir = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return usage(stdout);
        if (!strcmp(argv[i], "-o")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "lockstep report: -o needs a directory\n");
                return usage(stderr);
            }
            dir = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "lockstep report: unknown option '%s'\n", argv[i]);
            return usage(stderr);
        } else if (path) {
            fprintf(stderr, "lockstep report: one file at a time\n");
            return usage(stderr);
        } else {
            path = argv[i];
        }
    }
    if (!path || !dir) return usage(stderr);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "lockstep report: cannot open '%s': %s\n", path,
                errno ? strerror(errno) : "not a regular file");
        return 2;
    }
    int has_analysis = 0;
    char *format = file_format(path, &has_analysis);
    int is_trace = format && !strcmp(format, "lockstep-trace");
    int is_sweep = format && !strcmp(format, "lockstep-sweep");
    free(format);
    if (!is_trace && !is_sweep) {
        fprintf(stderr, "lockstep report: '%s' is neither a lockstep trace nor a sweep\n", path);
        return 2;
    }
    const char *why = NULL;
    const char *py = find_python(&why);
    if (!py) {
        fprintf(stderr, "lockstep report: %s: the renderer needs python3 with h5py, numpy and "
                        "matplotlib (Debian: apt-get install python3-h5py python3-numpy "
                        "python3-matplotlib, or tools/setup.sh --deps)\n", why);
        return 2;
    }
    char render[PATH_MAX];
    if (find_renderer(render, sizeof render)) {
        fprintf(stderr, "lockstep report: reports/render.py not found (looked in %s/reports)\n",
                LS_SOURCE_ROOT);
        return 2;
    }
    if (mkdir(dir, 0777) && errno != EEXIST) {
        fprintf(stderr, "lockstep report: cannot create '%s': %s\n", dir, strerror(errno));
        return 2;
    }
    ls_err err = {{0}};
    char verdict[PATH_MAX] = "";
    if (is_trace || !has_analysis) {
        /* a trace's findings, or a sweep's analysis: written into the file when the sweep
         * is complete, else (a shard, an unfinished run) only passed to the renderer */
        snprintf(verdict, sizeof verdict, "%s/.verdict.%ld.txt", dir, (long)getpid());
        FILE *v = fopen(verdict, "w");
        if (!v) {
            fprintf(stderr, "lockstep report: cannot write '%s': %s\n", verdict, strerror(errno));
            return 2;
        }
        int rc = is_trace ? ls_analyse_trace_file(path, v, &err)
                          : (ls_analyse_sweep_auto(path, v, 1, &err) < 0 ? -1 : 0);
        if (fclose(v) && !rc) rc = ls_errf(&err, "writing '%s': %s", verdict, strerror(errno));
        if (rc) {
            unlink(verdict);
            fprintf(stderr, "lockstep report: %s\n", err.msg);
            return 2;
        }
    }
    char self[PATH_MAX];
    ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
    if (l < 0) l = 0;
    self[l] = 0;
    char *args[12];
    int n = 0;
    args[n++] = (char *)py;
    args[n++] = render;
    args[n++] = (char *)path;
    args[n++] = "-o";
    args[n++] = (char *)dir;
    if (verdict[0]) {
        args[n++] = "--verdict-file";
        args[n++] = verdict;
    }
    if (self[0]) {
        args[n++] = "--lockstep";
        args[n++] = self;
    }
    args[n] = NULL;
    int rst = run_wait(args, 0);
    if (verdict[0]) unlink(verdict);
    if (rst != 0) {
        fprintf(stderr, "lockstep report: %s %s failed (exit %d)\n", py, render, rst);
        return 2;
    }
    printf("report: %s/index.html\n", dir);
    return fflush(stdout) ? 2 : 0;
}
