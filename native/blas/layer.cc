// Whole halves of a Llama decoder layer as one addon call each way (kernels/decoder-layer.ts), on caller-owned
// Float32Arrays. The MLP half: y = x1 + down(silu(gate(h2)) * up(h2)), h2 = rmsnorm(x1) (HF `LlamaDecoderLayer`'s
// second residual block), with frozen weights (no bias, no adapter): the forward also writes a stash (x1, 1/rms per row,
// gate, up) that the backward reads, and the backward gives dx1 only. The row math is fused.cc's (same lane order, same
// exp), the products are gemm.h's (blocks fixed by the shape), and elementwise work is cut into tasks fixed by the shape,
// so any thread count gives the same bits. Leaves out: weight gradients, bias, adapters, the attention half.
#include <node_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <vector>

#include "gemm.h"
#include "pool.h"

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__)
#define HOT __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define HOT
#endif

namespace {

Pool* pool = nullptr;  // fused.cc's, so setThreads sizes it

struct Args {
  napi_env env;
  napi_value argv[12];
  size_t argc = 12;
  bool ok = true;
  const char* name;
  Args(napi_env e, napi_callback_info info, size_t want, const char* n) : env(e), name(n) {
    if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc != want) fail("wrong number of arguments");
  }
  void fail(const char* what) {
    if (!ok) return;
    ok = false;
    char msg[160];
    snprintf(msg, sizeof msg, "layer addon %s: %s", name, what);
    napi_throw_range_error(env, nullptr, msg);
  }
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
  int64_t size(size_t i) {
    int64_t x = -1;
    if (ok && (napi_get_value_int64(env, argv[i], &x) != napi_ok || x < 1)) fail("a size is not a positive integer");
    return x;
  }
  double num(size_t i) {
    double x = 0;
    if (ok && napi_get_value_double(env, argv[i], &x) != napi_ok) fail("a scalar is not a number");
    return x;
  }
};

// ---- row math as in fused.cc (same lane order, same exp) ----

constexpr int L = 16;

HOT float sumSq(const float* x, int64_t n) {
  float acc[L] = {0};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int l = 0; l < L; l++) acc[l] += x[i + l] * x[i + l];
  float s = 0;
  for (int l = 0; l < L; l++) s += acc[l];
  for (; i < n; i++) s += x[i] * x[i];
  return s;
}

HOT float dot3(const float* a, const float* b, const float* c, int64_t n) {
  float acc[L] = {0};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int l = 0; l < L; l++) acc[l] += a[i + l] * b[i + l] * c[i + l];
  float s = 0;
  for (int l = 0; l < L; l++) s += acc[l];
  for (; i < n; i++) s += a[i] * b[i] * c[i];
  return s;
}

/** fused.cc's expFast (Cephes expf; 0 below -87, e^88 above 88). */
inline float expFast(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const int32_t bits = ((int32_t)n + 127) << 23;
  float scale;
  memcpy(&scale, &bits, 4);
  return x <= -87.0f ? 0.0f : y * scale;
}

HOT void swigluRange(const float* g, const float* u, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float sg = 1.0f / (1.0f + expFast(-g[i]));
    y[i] = g[i] * sg * u[i];
  }
}

/** In place: on entry dg holds d(act); on exit dg = d(gate), du = d(up). */
HOT void swigluGradRange(const float* g, const float* u, float* dg, float* du, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float sg = 1.0f / (1.0f + expFast(-g[i]));
    const float silu = g[i] * sg;
    const float dy = dg[i];
    du[i] = dy * silu;
    dg[i] = dy * u[i] * (sg * (1.0f + g[i] * (1.0f - sg)));
  }
}

/** Rows per task: about 16K elements, never split a row; a function of the shape only (fused.cc's). */
int64_t rowsPerTask(int64_t width) { return width >= 16384 ? 1 : 16384 / (width > 0 ? width : 1); }

template <typename F>
void forRows(int64_t rows, int64_t width, F f) {
  const int64_t per = rowsPerTask(width);
  const int64_t tasks = (rows + per - 1) / per;
  pool->run(tasks, [&](int64_t t) {
    const int64_t r0 = t * per, r1 = r0 + per < rows ? r0 + per : rows;
    f(r0, r1);
  });
}

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* a, const float* b, float beta, float* c) {
  gemmDeterministic(*pool, ta, tb, M, N, K, a, 0, b, 0, beta, c, 1);
}

/** The stash of the MLP half, [M * (H + 1 + 2I)]: x1 [M, H], then 1/rms [M], gate [M, I], up [M, I]. */
struct Stash {
  float *x1, *rinv, *gate, *up;
  Stash(float* s, int64_t M, int64_t H, int64_t I) : x1(s), rinv(s + M * H), gate(s + M * H + M), up(s + M * H + M + M * I) {}
};

// mlpForward(x1 [M,H], normW [H], gateW [I,H], upW [I,H], downW [H,I], y [M,H], stash, M, H, I, eps):
//   h2 = x1 * rsqrt(mean(x1^2) + eps) * normW; gate = h2 gateW^T; up = h2 upW^T; y = x1 + (silu(gate) * up) downW^T.
napi_value MlpForward(napi_env env, napi_callback_info info) {
  Args a(env, info, 11, "mlpForward");
  const int64_t M = a.size(7), H = a.size(8), I = a.size(9);
  const float eps = (float)a.num(10);
  const float *x1 = a.f32(0, M * H), *nw = a.f32(1, H), *gw = a.f32(2, I * H), *uw = a.f32(3, I * H), *dw = a.f32(4, H * I);
  float *y = a.f32(5, M * H), *s = a.f32(6, M * (H + 1 + 2 * I));
  if (!a.ok) return nullptr;
  const Stash st(s, M, H, I);
  std::vector<float> h2((size_t)(M * H)), act((size_t)(M * I));
  forRows(M, H, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x1 + r * H;
      float* hr = h2.data() + r * H;
      const float ri = 1.0f / sqrtf(sumSq(xr, H) / (float)H + eps);
      st.rinv[r] = ri;
      for (int64_t i = 0; i < H; i++) hr[i] = xr[i] * ri * nw[i];
      memcpy(st.x1 + r * H, xr, sizeof(float) * H);
    }
  });
  gemm(false, true, M, I, H, h2.data(), gw, 0.0f, st.gate);
  gemm(false, true, M, I, H, h2.data(), uw, 0.0f, st.up);
  forRows(M, I, [&](int64_t r0, int64_t r1) { swigluRange(st.gate + r0 * I, st.up + r0 * I, act.data() + r0 * I, (r1 - r0) * I); });
  gemm(false, true, M, H, I, act.data(), dw, 0.0f, y);
  forRows(M, H, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0 * H; i < r1 * H; i++) y[i] = x1[i] + y[i];
  });
  return nullptr;
}

// mlpBackward(dy [M,H], stash, normW, gateW, upW, downW, dx1 [M,H], M, H, I):
//   dAct = dy downW; dGate, dUp from silu(gate) * up; dh2 = dGate gateW + dUp upW;
//   dx1 = dy + rinv * normW * dh2 - x1 * rinv^3 * mean(normW * dh2 * x1).
napi_value MlpBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, 10, "mlpBackward");
  const int64_t M = a.size(7), H = a.size(8), I = a.size(9);
  const float *dy = a.f32(0, M * H), *s = a.f32(1, M * (H + 1 + 2 * I)), *nw = a.f32(2, H);
  const float *gw = a.f32(3, I * H), *uw = a.f32(4, I * H), *dw = a.f32(5, H * I);
  float* dx = a.f32(6, M * H);
  if (!a.ok) return nullptr;
  const Stash st(const_cast<float*>(s), M, H, I);
  std::vector<float> dg((size_t)(M * I)), du((size_t)(M * I)), dh((size_t)(M * H));
  gemm(false, false, M, I, H, dy, dw, 0.0f, dg.data());
  forRows(M, I, [&](int64_t r0, int64_t r1) {
    swigluGradRange(st.gate + r0 * I, st.up + r0 * I, dg.data() + r0 * I, du.data() + r0 * I, (r1 - r0) * I);
  });
  gemm(false, false, M, H, I, dg.data(), gw, 0.0f, dh.data());
  gemm(false, false, M, H, I, du.data(), uw, 1.0f, dh.data());
  forRows(M, H, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float *xr = st.x1 + r * H, *gr = dh.data() + r * H, *yr = dy + r * H;
      float* dr = dx + r * H;
      const float ri = st.rinv[r];
      const float c = dot3(nw, gr, xr, H) / (float)H * ri * ri * ri;
      for (int64_t i = 0; i < H; i++) dr[i] = yr[i] + (ri * nw[i] * gr[i] - xr[i] * c);
    }
  });
  return nullptr;
}

}  // namespace

/** Adds mlpForward and mlpBackward to the addon's exports; tasks run on `fusedPool`. */
void RegisterLayer(napi_env env, napi_value exports, Pool& fusedPool) {
  pool = &fusedPool;
  const struct { const char* name; napi_callback fn; } fns[] = {
      {"mlpForward", MlpForward}, {"mlpBackward", MlpBackward},
  };
  for (const auto& f : fns) {
    napi_value v;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.fn, nullptr, &v);
    napi_set_named_property(env, exports, f.name, v);
  }
}
