// The argument plumbing of the addon's Node-API entry points in attention.cc and layer.cc: the arguments of one call,
// checked, with the first problem thrown as a RangeError that names the entry point ("<prefix> <name>: <what>") and
// every later read a no-op (check `ok` before using the values). fused.cc keeps its own, older form (a name per read).
#pragma once
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>

struct AddonArgs {
  static constexpr size_t MAX = 40;
  napi_env env;
  napi_value argv[MAX];
  size_t argc = MAX;
  bool ok = true;
  const char* prefix;
  const char* name;
  void* data = nullptr;  // the function's data (napi_create_function's)

  AddonArgs(napi_env e, napi_callback_info info, size_t want, const char* p, const char* n) : env(e), prefix(p), name(n) {
    if (napi_get_cb_info(env, info, &argc, argv, nullptr, &data) != napi_ok || argc != want) fail("wrong number of arguments");
  }
  void fail(const char* what) {
    if (!ok) return;
    ok = false;
    char msg[160];
    snprintf(msg, sizeof msg, "%s %s: %s", prefix, name, what);
    napi_throw_range_error(env, nullptr, msg);
  }
  /** argv[i] as a Float32Array of exactly len floats. */
  float* f32(size_t i, int64_t len) {
    if (!ok) return nullptr;
    napi_typedarray_type type;
    size_t n = 0;
    void* ptr = nullptr;
    napi_value buf;
    size_t off = 0;
    if (napi_get_typedarray_info(env, argv[i], &type, &n, &ptr, &buf, &off) != napi_ok || type != napi_float32_array) {
      fail("an operand is not a Float32Array");
      return nullptr;
    }
    if ((int64_t)n != len) {
      fail("an operand has the wrong length");
      return nullptr;
    }
    return static_cast<float*>(ptr);
  }
  /** A positive integer. */
  int64_t size(size_t i) {
    int64_t x = -1;
    if (ok && (napi_get_value_int64(env, argv[i], &x) != napi_ok || x < 1)) fail("a size is not a positive integer");
    return x;
  }
  /** A non-negative integer. */
  int64_t size0(size_t i) {
    int64_t x = -1;
    if (ok && (napi_get_value_int64(env, argv[i], &x) != napi_ok || x < 0)) fail("a size is not a non-negative integer");
    return x;
  }
  double num(size_t i) {
    double x = 0;
    if (ok && napi_get_value_double(env, argv[i], &x) != napi_ok) fail("a scalar is not a number");
    return x;
  }
  /** A Float32Array view of floats [off, off + len) of the typed array argv[i] (same buffer, no copy). */
  napi_value sub(size_t i, int64_t off, int64_t len) {
    if (!ok) return nullptr;
    napi_typedarray_type type;
    size_t n = 0;
    void* ptr = nullptr;
    napi_value buf, out;
    size_t boff = 0;
    if (napi_get_typedarray_info(env, argv[i], &type, &n, &ptr, &buf, &boff) != napi_ok
        || napi_create_typedarray(env, napi_float32_array, (size_t)len, buf, boff + 4 * (size_t)off, &out) != napi_ok) {
      fail("cannot view an operand");
      return nullptr;
    }
    return out;
  }
};
