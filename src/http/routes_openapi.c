/* GET /api/v1/openapi.json: the OpenAPI 3.0 document of every route,
 * src/http/openapi.json embedded at build time. Under /api/ like the data
 * routes, it needs the token when the server has one: a caller without it
 * learns nothing of the API, as with an unknown route. */
#include <string.h>

#include "http/http_internal.h"

extern const char er__http_doc_openapi[]; /* generated: http_openapi_embed.c */

void er__http_openapi(er__http_req_t *rq, er__http_resp_t *out) {
  (void)rq;
  er_free(out->body);
  out->body = er_strdup(er__http_doc_openapi);
  if (!out->body) {
    er__http_error(out, 500, "out of memory");
    return;
  }
  out->body_len = strlen(out->body);
  out->status = 200;
  out->content_type = "application/json";
}
