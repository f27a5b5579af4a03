/*
 * The main() of build/t/fuzz-<name>.t: feeds every file of the corpus to the harness's
 * LLVMFuzzerTestOneInput() and prints one TAP line per file, named by the file, so a gcc
 * build replays the corpora on every `make test` (h2o's 99fuzzer-*.t, git's -runs=1 smoke).
 *
 *   build/t/fuzz-<name>.t              replays $CHATD_ROOT/t/fuzz/corpus/<name>/ (else ./t/...)
 *   build/t/fuzz-<name>.t PATH...      replays these files, and the files of these directories
 *
 * A crash or a broken invariant (abort) kills the process: prove then reports the missing
 * lines and the signal; the last "# replaying" comment (prove -v) names the input.
 */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>

static int replay_run, replay_failed;

static void replay_ok(int pass, const char *name, const char *why)
{
    replay_run++;
    replay_failed += !pass;
    printf("%s %d - %s%s%s\n", pass ? "ok" : "not ok", replay_run, name, why ? ": " : "",
           why ? why : "");
    fflush(stdout);
}

/* Reads the whole file into a malloc'd buffer (exactly *len bytes, no terminator added). */
static uint8_t *replay_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        uint8_t *bigger = realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    /* An exact-size copy, so a harness reading past size trips ASan. */
    uint8_t *exact = buf ? malloc(n ? n : 1) : NULL;
    if (exact)
        memcpy(exact, buf, n);
    free(buf);
    *len = n;
    return exact;
}

static void replay_file(const char *path, const char *name)
{
    size_t len;
    uint8_t *data = replay_read(path, &len);
    if (!data) {
        replay_ok(0, name, strerror(errno));
        return;
    }
    printf("# replaying %s (%zu bytes)\n", path, len);
    fflush(stdout);
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    replay_ok(1, name, NULL);
}

static int replay_visible(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

static void replay_dir(const char *dir)
{
    struct dirent **list;
    int n = scandir(dir, &list, replay_visible, alphasort);
    if (n < 0) {
        replay_ok(0, dir, strerror(errno));
        return;
    }
    if (n == 0)
        replay_ok(0, dir, "empty corpus");
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, list[i]->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            replay_file(path, list[i]->d_name);
        free(list[i]);
    }
    free(list);
}

static void replay_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        replay_dir(path);
    else
        replay_file(path, path);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            replay_path(argv[i]);
    } else {
        /* build/t/fuzz-<name>.t → t/fuzz/corpus/<name> */
        const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
        if (!strncmp(base, "fuzz-", 5))
            base += 5;
        size_t n = strcspn(base, ".");
        const char *root = getenv("CHATD_ROOT");
        char dir[4096];
        snprintf(dir, sizeof(dir), "%s/t/fuzz/corpus/%.*s", root && *root ? root : ".", (int)n,
                 base);
        replay_dir(dir);
    }
    printf("1..%d\n", replay_run);
    return replay_failed ? 1 : 0;
}
