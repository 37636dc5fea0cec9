/* The callback secret: a store document, made at first use, rotated on
 * demand, and kept by the process for a few seconds so that making and
 * checking tokens costs no store call (see token.h). */
#include <pthread.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "pipeline/token.h"

void (*er__pipe_secret_race_hook)(er_store_t *s, bool rotating);

/* ---- The document ---- */

static void to_hex(const uint8_t *b, char out[2 * ER__PIPE_SECRET_LEN + 1]) {
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < ER__PIPE_SECRET_LEN; i++) {
    out[2 * i] = hex[b[i] >> 4];
    out[2 * i + 1] = hex[b[i] & 15];
  }
  out[2 * ER__PIPE_SECRET_LEN] = 0;
}

static int nibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* true when s is exactly 64 lower-case hex digits, decoded into out. */
static bool from_hex(const char *s, uint8_t out[ER__PIPE_SECRET_LEN]) {
  if (!s || strlen(s) != 2 * ER__PIPE_SECRET_LEN) return false;
  for (int i = 0; i < ER__PIPE_SECRET_LEN; i++) {
    int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = (uint8_t)(hi * 16 + lo);
  }
  return true;
}

/* The secret in the stored document v (at version). A document this code
 * did not write is refused rather than half-used: ER_ECORRUPT, logged,
 * since the token functions have no message of their own to put it in. */
static int decode_doc(const json_t *v, int64_t version, er__pipe_secret_t *out) {
  const json_t *prev = json_object_get(v, "previous"), *at = json_object_get(v, "rotated_ms");
  const char *why = NULL;
  memset(out, 0, sizeof *out);
  if (!json_is_object(v))
    why = "not an object";
  else if (!from_hex(json_string_value(json_object_get(v, "current")), out->current))
    why = "\"current\" is not 64 lower-case hex digits";
  else if (prev && !json_is_null(prev) && !from_hex(json_string_value(prev), out->previous))
    why = "\"previous\" is neither null nor 64 lower-case hex digits";
  else if (!json_is_integer(at))
    why = "\"rotated_ms\" is not an integer";
  if (why) {
    OPENSSL_cleanse(out, sizeof *out);
    er_log(ER_LOG_ERROR, "callback secret %s/%s is malformed: %s", ER__PIPE_SECRET_COLL,
           ER__PIPE_SECRET_KEY, why);
    return ER_ECORRUPT;
  }
  out->has_previous = prev && !json_is_null(prev);
  out->rotated_ms = json_integer_value(at);
  out->version = version;
  return 0;
}

/* A fresh secret into sec, previous (may be NULL) kept as its previous, and
 * the document that stores it into *doc (new). */
static int new_doc(const uint8_t *previous, er__pipe_secret_t *sec, json_t **doc) {
  char cur[2 * ER__PIPE_SECRET_LEN + 1], prev[2 * ER__PIPE_SECRET_LEN + 1];
  *doc = NULL;
  memset(sec, 0, sizeof *sec);
  if (RAND_bytes(sec->current, ER__PIPE_SECRET_LEN) != 1) return ER_ESYS;
  to_hex(sec->current, cur);
  if (previous) {
    memcpy(sec->previous, previous, ER__PIPE_SECRET_LEN);
    sec->has_previous = true;
    to_hex(previous, prev);
  }
  sec->rotated_ms = er_now_wall_ms();
  *doc = json_pack("{s:s, s:s?, s:I}", "current", cur, "previous", previous ? prev : NULL,
                   "rotated_ms", (json_int_t)sec->rotated_ms);
  OPENSSL_cleanse(cur, sizeof cur);
  OPENSSL_cleanse(prev, sizeof prev);
  return *doc ? 0 : ER_ENOMEM;
}

/* Stores doc if the document is at if_version; sec->version gets the new. */
static int put_doc(er_store_t *s, json_t *doc, int64_t if_version, er__pipe_secret_t *sec) {
  er_mut_t m = {.kind = ER_MUT_DOC_PUT,
                .coll = ER__PIPE_SECRET_COLL,
                .key = ER__PIPE_SECRET_KEY,
                .value = doc,
                .if_version = if_version};
  er_mut_result_t res = {0};
  int rc = er_store_apply(s, &m, 1, &res, NULL);
  if (!rc) sec->version = res.version;
  return rc;
}

/* The stored secret; ER_ENOENT when there is none yet. */
static int read_secret(er_store_t *s, er__pipe_secret_t *out) {
  json_t *v = NULL;
  int64_t version = 0;
  int rc = er_store_doc_get(s, ER__PIPE_SECRET_COLL, ER__PIPE_SECRET_KEY, &v, &version);
  if (!rc) rc = decode_doc(v, version, out);
  json_decref(v);
  return rc;
}

/* The stored secret, made when there is none. Two processes making it at
 * once both write "if absent": one wins, the other reads the winner's. A
 * document deleted in between makes the loop go round again (bounded). */
static int load_or_make(er_store_t *s, er__pipe_secret_t *out) {
  int rc = ER_ESTATE;
  for (int tries = 0; tries < 3; tries++) {
    rc = read_secret(s, out);
    if (rc != ER_ENOENT) return rc;
    if (er__pipe_secret_race_hook) er__pipe_secret_race_hook(s, false);
    json_t *doc;
    rc = new_doc(NULL, out, &doc);
    if (!rc) rc = put_doc(s, doc, ER_VERSION_ABSENT, out);
    json_decref(doc);
    if (rc != ER_EEXIST) return rc;
  }
  return rc;
}

/* ---- The process's cache, by store URL ---- */

#define SLOTS 8
static struct slot {
  char *url; /* NULL: free */
  er__pipe_secret_t sec;
  uint64_t at_ms; /* monotonic: when it was read */
} g_slots[SLOTS];
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

static struct slot *find(const char *url) {
  for (int i = 0; i < SLOTS; i++)
    if (g_slots[i].url && strcmp(g_slots[i].url, url) == 0) return &g_slots[i];
  return NULL;
}

static bool cache_get(const char *url, er__pipe_secret_t *out) {
  if (!url) return false;
  pthread_mutex_lock(&g_mu);
  struct slot *sl = find(url);
  bool hit = sl && er_now_mono_ms() - sl->at_ms < ER__PIPE_SECRET_TTL_MS;
  if (hit) *out = sl->sec;
  pthread_mutex_unlock(&g_mu);
  return hit;
}

/* Keeps sec for url, unless a newer version is kept already (a slow reader
 * must not put back what a rotation replaced). Without memory for the URL,
 * nothing is kept: the cache only saves store calls. */
static void cache_put(const char *url, const er__pipe_secret_t *sec) {
  if (!url) return;
  pthread_mutex_lock(&g_mu);
  struct slot *sl = find(url);
  if (!sl) {
    sl = &g_slots[0];
    for (int i = 0; i < SLOTS && sl->url; i++)
      if (!g_slots[i].url || g_slots[i].at_ms < sl->at_ms) sl = &g_slots[i];
    char *copy = er_strdup(url);
    if (copy) {
      er_free(sl->url);
      sl->url = copy;
      sl->sec.version = 0;
    }
    if (!copy) sl = NULL;
  }
  if (sl && sec->version >= sl->sec.version) {
    sl->sec = *sec;
    sl->at_ms = er_now_mono_ms();
  }
  pthread_mutex_unlock(&g_mu);
}

void er__pipe_secret_cache_clear(void) {
  pthread_mutex_lock(&g_mu);
  for (int i = 0; i < SLOTS; i++) {
    er_free(g_slots[i].url);
    OPENSSL_cleanse(&g_slots[i], sizeof g_slots[i]);
  }
  pthread_mutex_unlock(&g_mu);
}

/* ---- The API ---- */

int er__pipe_secret_derive(const char *text, uint8_t out[ER__PIPE_SECRET_LEN]) {
  static const char label[] = "errand callback secret";
  if (!text || strlen(text) < ER_SECRET_MIN_LEN) return ER_EINVAL;
  unsigned int n = 0;
  if (!HMAC(EVP_sha256(), text, (int)strlen(text), (const unsigned char *)label,
            sizeof label - 1, out, &n) ||
      n != ER__PIPE_SECRET_LEN)
    return ER_EINTERNAL;
  return 0;
}

int er__pipe_secret_load(er_store_t *s, er__pipe_secret_t *out) {
  int rc = load_or_make(s, out);
  if (rc) {
    OPENSSL_cleanse(out, sizeof *out);
    return rc;
  }
  cache_put(er_store_url(s), out);
  return 0;
}

int er__pipe_secret_get(er_store_t *s, er__pipe_secret_t *out, bool *cached) {
  bool hit = cache_get(er_store_url(s), out);
  if (cached) *cached = hit;
  return hit ? 0 : er__pipe_secret_load(s, out);
}

int er__pipe_secret_rotate(er_store_t *s) {
  int rc = ER_ESTATE;
  for (int tries = 0; tries < 3 && rc; tries++) {
    er__pipe_secret_t old, sec;
    json_t *doc = NULL;
    rc = load_or_make(s, &old);
    if (!rc) rc = new_doc(old.current, &sec, &doc);
    if (!rc && er__pipe_secret_race_hook) er__pipe_secret_race_hook(s, true);
    if (!rc) rc = put_doc(s, doc, old.version, &sec);
    json_decref(doc);
    if (!rc) cache_put(er_store_url(s), &sec);
    /* Changed since it was read: only a rotation changes it, and that one
     * stands. Read it, so this process signs with it at once. */
    if (rc == ER_ESTATE) rc = er__pipe_secret_load(s, &sec);
    OPENSSL_cleanse(&old, sizeof old);
    OPENSSL_cleanse(&sec, sizeof sec);
    if (rc && rc != ER_ENOENT) return rc; /* ENOENT: deleted meanwhile, again */
  }
  return rc;
}
