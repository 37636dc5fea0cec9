/* The dashboard's files (web/ in the source tree, embedded at build time):
 * GET / and its scripts and style sheet. They carry no data, so they need no
 * token; the page asks for it before its first call under /api/. Each file
 * has an ETag (a hash of its bytes) and "no-cache": a browser revalidates and
 * gets 304 until the server runs another build. */
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>

#include "http/http_internal.h"

extern const char er__web_index[], er__web_core[], er__web_dash[], er__web_style[];

typedef struct asset {
  const char *path, *type, *data;
  char etag[24]; /* "\"" + 16 hex digits + "\"" */
} asset_t;

static asset_t assets[] = {
    {"/", "text/html; charset=utf-8", er__web_index, ""},
    {"/core.js", "text/javascript; charset=utf-8", er__web_core, ""},
    {"/dash.js", "text/javascript; charset=utf-8", er__web_dash, ""},
    {"/style.css", "text/css; charset=utf-8", er__web_style, ""},
};

static pthread_once_t etags_once = PTHREAD_ONCE_INIT;

static void make_etags(void) {
  for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++) {
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)assets[i].data, strlen(assets[i].data), h);
    snprintf(assets[i].etag, sizeof assets[i].etag,
             "\"%02x%02x%02x%02x%02x%02x%02x%02x\"", h[0], h[1], h[2], h[3], h[4], h[5], h[6],
             h[7]);
  }
}

/* Whether an If-None-Match list names etag (or is "*"). */
static bool matches(const char *list, const char *etag) {
  if (!list) return false;
  if (!strcmp(list, "*")) return true;
  size_t n = strlen(etag);
  for (const char *p = strstr(list, etag); p; p = strstr(p + 1, etag)) {
    char after = p[n];
    if (after == 0 || after == ',' || after == ' ') return true;
  }
  return false;
}

void er__http_web(er__http_req_t *rq, er__http_resp_t *out) {
  pthread_once(&etags_once, make_etags);
  for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++) {
    const asset_t *a = &assets[i];
    if (strcmp(a->path, rq->path)) continue;
    out->etag = a->etag;
    out->cache_control = "no-cache";
    out->content_type = a->type;
    if (matches(rq->if_none_match, a->etag)) {
      out->status = 304;
      return;
    }
    out->body = er_strdup(a->data);
    if (!out->body) {
      out->etag = out->cache_control = NULL;
      er__http_error(out, 500, "out of memory");
      return;
    }
    out->body_len = strlen(a->data);
    out->status = 200;
    return;
  }
  er__http_error(out, 404, "no file %s", rq->path);
}
