/* The HTTP tests' fixture (http_fixture.c): one server, store and worker
 * for a group of cmocka tests. */
#ifndef ER_TEST_HTTP_FIXTURE_H
#define ER_TEST_HTTP_FIXTURE_H

#include <jansson.h>
#include <stdbool.h>

#include "harness.h"
#include "http_client.h"

extern harness_t H;           /* the store (H.url, H.client) */
extern er_http_server_t *g_srv;
extern int g_port;            /* g_srv's port */

/* Runs tests as group name around the fixture: argv[1] "redis" for a
 * private redis-server (77, skipped, when none is installed). */
struct CMUnitTest;
int fx_run(int argc, char **argv, const char *name, const struct CMUnitTest *tests, size_t n);
/* A request whose answer must have status want; its JSON body (new). */
json_t *call(const char *method, const char *path, const char *body, int want);
const char *str(json_t *o, const char *k);
/* Starts pipeline name and waits for its status links; the links (new). */
json_t *links_of(const char *name, er_id_t *root);
/* Waits until pipeline root's status is want (fails after 60 s). */
void status_of(const char *root, const char *want);

#endif
