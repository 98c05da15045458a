// Node-API addon: batched float32 GEMM through CBLAS (OpenBLAS on Linux, Accelerate on macOS) for tfjs kernels, and
// the fused kernels of fused.cc. It reads and writes caller-owned Float32Arrays in place (the wasm heap or cpu-backend
// buffers); no copies, no allocation. Products go through gemm.h: the same bits at any thread count.
#include <node_api.h>
#include <stdint.h>
#include <string.h>

#include "gemm.h"

#ifndef __APPLE__
// OpenBLAS's own name for the kernels it picked, and its thread count (weak: another CBLAS simply has none).
extern "C" char* openblas_get_corename(void) __attribute__((weak));
extern "C" void openblas_set_num_threads(int) __attribute__((weak));
#endif

#define CHECK(call)                                                   \
  if ((call) != napi_ok) {                                            \
    napi_throw_error(env, nullptr, "blas addon: bad arguments");      \
    return nullptr;                                                   \
  }

static bool f32(napi_env env, napi_value v, float** data, size_t* len) {
  napi_typedarray_type type;
  void* ptr = nullptr;
  napi_value buf;
  size_t off = 0;
  if (napi_get_typedarray_info(env, v, &type, len, &ptr, &buf, &off) != napi_ok) return false;
  if (type != napi_float32_array) return false;
  *data = static_cast<float*>(ptr);
  return true;
}

static int64_t i64(napi_env env, napi_value v) {
  int64_t x = 0;
  napi_get_value_int64(env, v, &x);
  return x;
}

// sgemm(transA, transB, M, N, K, a, aOff, strideA, b, bOff, strideB, c, cOff, batch):
// for i < batch: c[cOff + i*M*N] = op(a[aOff + i*strideA]) * op(b[bOff + i*strideB]), row-major, offsets in floats.
// op(a) is [M, K] (stored [K, M] when transA), op(b) is [K, N] (stored [N, K] when transB). Bounds are checked here.
static napi_value Sgemm(napi_env env, napi_callback_info info) {
  size_t argc = 14;
  napi_value argv[14];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 14) {
    napi_throw_error(env, nullptr, "blas addon: sgemm expects 14 arguments");
    return nullptr;
  }
  bool ta = false, tb = false;
  CHECK(napi_get_value_bool(env, argv[0], &ta));
  CHECK(napi_get_value_bool(env, argv[1], &tb));
  const int64_t M = i64(env, argv[2]), N = i64(env, argv[3]), K = i64(env, argv[4]);
  float *a = nullptr, *b = nullptr, *c = nullptr;
  size_t na = 0, nb = 0, nc = 0;
  if (!f32(env, argv[5], &a, &na) || !f32(env, argv[8], &b, &nb) || !f32(env, argv[11], &c, &nc)) {
    napi_throw_type_error(env, nullptr, "blas addon: a, b and c must be Float32Arrays");
    return nullptr;
  }
  const int64_t aOff = i64(env, argv[6]), sA = i64(env, argv[7]);
  const int64_t bOff = i64(env, argv[9]), sB = i64(env, argv[10]);
  const int64_t cOff = i64(env, argv[12]), batch = i64(env, argv[13]);
  if (M < 0 || N < 0 || K < 0 || batch < 0 || aOff < 0 || bOff < 0 || cOff < 0 || sA < 0 || sB < 0 ||
      (batch > 0 && (aOff + (batch - 1) * sA + M * K > (int64_t)na || bOff + (batch - 1) * sB + K * N > (int64_t)nb ||
                     cOff + batch * M * N > (int64_t)nc))) {
    napi_throw_range_error(env, nullptr, "blas addon: sgemm operands out of bounds");
    return nullptr;
  }
  gemmDeterministic(sharedPool(), ta, tb, M, N, K, a + aOff, sA, b + bOff, sB, 0.0f, c + cOff, batch);
  return nullptr;
}

void RegisterFused(napi_env env, napi_value exports);  // fused.cc

static napi_value Init(napi_env env, napi_value exports) {
#ifndef __APPLE__
  if (openblas_set_num_threads) openblas_set_num_threads(1);  // threads come from the pool (gemm.h)
#endif
  RegisterFused(env, exports);
  napi_value fn;
  napi_create_function(env, "sgemm", NAPI_AUTO_LENGTH, Sgemm, nullptr, &fn);
  napi_set_named_property(env, exports, "sgemm", fn);
  napi_value lib;
#ifdef __APPLE__
  napi_create_string_utf8(env, "Accelerate", NAPI_AUTO_LENGTH, &lib);
#else
  napi_create_string_utf8(env, "cblas", NAPI_AUTO_LENGTH, &lib);
#endif
  napi_set_named_property(env, exports, "library", lib);
  napi_value core;
#ifdef __APPLE__
  napi_create_string_utf8(env, "Accelerate", NAPI_AUTO_LENGTH, &core);
#else
  const char* name = openblas_get_corename ? openblas_get_corename() : "unknown";
  napi_create_string_utf8(env, name ? name : "unknown", NAPI_AUTO_LENGTH, &core);
#endif
  napi_set_named_property(env, exports, "core", core);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
