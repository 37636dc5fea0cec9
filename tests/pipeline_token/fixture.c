/* The callback token tests' fixture (pipe_token.h). */
#include <dirent.h>
#include <errno.h>
#include <unistd.h>

#include "pipe_token.h"

er_store_t *open_url(const char *url) {
  er_store_t *s = NULL;
  char err[256];
  int rc = er_store_open(url, &s, err, sizeof err);
  if (rc) fail_msg("open %s: %s: %s", url, er_err_name(rc), err);
  return s;
}

int setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  const char *env = getenv("ERRAND_TEST_STORE");
  if (env && *env) {
    snprintf(f->url, sizeof f->url, "%s", env);
  } else {
    snprintf(f->dir, sizeof f->dir, "/tmp/errand-token-XXXXXX");
    if (!mkdtemp(f->dir)) fail_msg("mkdtemp: %s", strerror(errno));
    snprintf(f->url, sizeof f->url, "sqlite:%s/store.db", f->dir);
  }
  f->s = open_url(f->url);
  /* Every test starts without a secret (a server's store is shared by the
   * tests: the URL is kept as given, a cluster's redirections included). */
  er_mut_t del = {.kind = ER_MUT_DOC_DEL,
                  .coll = ER__PIPE_SECRET_COLL,
                  .key = ER__PIPE_SECRET_KEY,
                  .if_version = ER_VERSION_ANY};
  assert_int_equal(er_store_apply(f->s, &del, 1, NULL, NULL), 0);
  er__pipe_secret_cache_clear();
  er__pipe_secret_race_hook = NULL;
  *state = f;
  return 0;
}

int teardown(void **state) {
  fx_t *f = *state;
  er_store_close(f->s);
  if (f->dir[0]) {
    DIR *d = opendir(f->dir);
    struct dirent *e;
    char p[256];
    while (d && (e = readdir(d)))
      if (e->d_name[0] != '.' && snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name) > 0) unlink(p);
    if (d) closedir(d);
    rmdir(f->dir);
  }
  free(f);
  er__pipe_secret_race_hook = NULL;
  return 0;
}

void make(er_store_t *s, const char *id, json_t *params, char out[ER__PIPE_TOKEN_LEN + 1]) {
  int rc = er__pipe_token_make(s, id, params, out);
  if (rc) fail_msg("make: %s: %s", er_err_name(rc), er_store_last_error(s));
  assert_int_equal(strlen(out), ER__PIPE_TOKEN_LEN);
  assert_int_equal(strspn(out, "0123456789abcdef"), ER__PIPE_TOKEN_LEN);
}

json_t *doc(er_store_t *s, int64_t *version) {
  json_t *v = NULL;
  assert_int_equal(er_store_doc_get(s, ER__PIPE_SECRET_COLL, ER__PIPE_SECRET_KEY, &v, version), 0);
  return v;
}

void put_doc(er_store_t *s, json_t *v) {
  er_mut_t m = {.kind = ER_MUT_DOC_PUT,
                .coll = ER__PIPE_SECRET_COLL,
                .key = ER__PIPE_SECRET_KEY,
                .value = v,
                .if_version = ER_VERSION_ANY};
  assert_int_equal(er_store_apply(s, &m, 1, NULL, NULL), 0);
  json_decref(v);
}

void hex32(const uint8_t *b, char out[65]) {
  for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}
