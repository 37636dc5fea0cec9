/* The error table's lookups. The table itself lives in errand/common.h. */
#include "errand/common.h"

const char *er_strerror(int code) {
  switch (code) {
#define ER__MSG(name, num, msg) \
  case (num):                   \
    return msg;
    ER_ERROR_TABLE(ER__MSG)
#undef ER__MSG
  }
  return "unknown error";
}

const char *er_err_name(int code) {
  switch (code) {
#define ER__NAME(name, num, msg) \
  case (num):                    \
    return #name;
    ER_ERROR_TABLE(ER__NAME)
#undef ER__NAME
  }
  return "EUNKNOWN";
}
