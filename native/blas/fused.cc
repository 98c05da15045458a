// Fused float32 CPU kernels for what is not a matmul in a Llama step (RMSNorm, RoPE, SiLU*up, the masked softmax of
// attention, log-softmax + gather), forward and backward, on caller-owned Float32Arrays (the wasm heap or cpu-backend
// buffers): no copies, no allocation in JS. The math follows the plain tfjs references in kernels/*.ts. Work is split
// into tasks of whole rows whose size does not depend on the thread count (pool.h), so 1 and N threads agree bit for
// bit. Leaves out: other dtypes, strides (every operand is dense row-major).
#include <node_api.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <vector>

#include "gemm.h"
#include "pool.h"
#include "rowmath.h"

#ifndef __APPLE__
extern "C" void openblas_set_num_threads(int) __attribute__((weak));
#endif


static Pool& pool = sharedPool();

// ---- argument plumbing ----

struct Args {
  napi_env env;
  napi_value argv[12];
  size_t argc = 12;
  bool ok = true;
  Args(napi_env e, napi_callback_info info, size_t want, const char* name) : env(e) {
    if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc != want) fail(name, "wrong number of arguments");
  }
  void fail(const char* name, const char* what) {
    if (!ok) return;
    ok = false;
    char msg[160];
    snprintf(msg, sizeof msg, "fused addon %s: %s", name, what);
    napi_throw_range_error(env, nullptr, msg);
  }
  template <typename T>
  T* array(size_t i, napi_typedarray_type want, size_t len, const char* name) {
    if (!ok) return nullptr;
    napi_typedarray_type type;
    size_t n = 0;
    void* ptr = nullptr;
    napi_value buf;
    size_t off = 0;
    if (napi_get_typedarray_info(env, argv[i], &type, &n, &ptr, &buf, &off) != napi_ok || type != want) {
      fail(name, "an operand is not a Float32Array (Int32Array for labels)");
      return nullptr;
    }
    if (n != len) {
      fail(name, "an operand has the wrong length");
      return nullptr;
    }
    return static_cast<T*>(ptr);
  }
  float* f32(size_t i, size_t len, const char* name) { return array<float>(i, napi_float32_array, len, name); }
  int32_t* i32(size_t i, size_t len, const char* name) { return array<int32_t>(i, napi_int32_array, len, name); }
  int64_t size(size_t i, const char* name) {
    int64_t x = -1;
    if (ok && (napi_get_value_int64(env, argv[i], &x) != napi_ok || x < 0)) fail(name, "a size is not a non-negative integer");
    return x;
  }
  double num(size_t i, const char* name) {
    double x = 0;
    if (ok && napi_get_value_double(env, argv[i], &x) != napi_ok) fail(name, "a scalar is not a number");
    return x;
  }
};

// ---- RMSNorm: y = x * rsqrt(mean(x^2) + eps) * w over rows of H ----

// rmsNormForward(x, w, y, rinv, rows, H, eps)
static napi_value RmsNormForward(napi_env env, napi_callback_info info) {
  Args a(env, info, 7, "rmsNormForward");
  const int64_t R = a.size(4, "rmsNormForward"), H = a.size(5, "rmsNormForward");
  const float eps = (float)a.num(6, "rmsNormForward");
  const float *x = a.f32(0, R * H, "rmsNormForward"), *w = a.f32(1, H, "rmsNormForward");
  float *y = a.f32(2, R * H, "rmsNormForward"), *rinv = a.f32(3, R, "rmsNormForward");
  if (!a.ok) return nullptr;
  forRows(pool, R, H, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * H;
      float* yr = y + r * H;
      const float ri = 1.0f / sqrtf(sumSq(xr, H) / (float)H + eps);
      rinv[r] = ri;
      for (int64_t i = 0; i < H; i++) yr[i] = xr[i] * ri * w[i];
    }
  });
  return nullptr;
}

// rmsNormBackward(x, w, rinv, dy, dx, dw, rows, H):
//   dx = rinv * w * dy - x * rinv^3 * mean(w * dy * x),  dw = sum over rows of dy * x * rinv.
static napi_value RmsNormBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, 8, "rmsNormBackward");
  const int64_t R = a.size(6, "rmsNormBackward"), H = a.size(7, "rmsNormBackward");
  const float *x = a.f32(0, R * H, "rmsNormBackward"), *w = a.f32(1, H, "rmsNormBackward");
  const float *rinv = a.f32(2, R, "rmsNormBackward"), *dy = a.f32(3, R * H, "rmsNormBackward");
  float *dx = a.f32(4, R * H, "rmsNormBackward"), *dw = a.f32(5, H, "rmsNormBackward");
  if (!a.ok) return nullptr;
  const int64_t per = rowsPerTask(H), tasks = (R + per - 1) / per;
  std::vector<float> part((size_t)(tasks * H), 0.0f);  // per-task dw, added in task order below
  pool.run(tasks, [&](int64_t t) {
    float* pw = part.data() + t * H;
    const int64_t r1 = (t + 1) * per < R ? (t + 1) * per : R;
    for (int64_t r = t * per; r < r1; r++) {
      const float *xr = x + r * H, *gr = dy + r * H;
      float* dr = dx + r * H;
      const float ri = rinv[r];
      const float c = dot3(w, gr, xr, H) / (float)H * ri * ri * ri;
      for (int64_t i = 0; i < H; i++) {
        dr[i] = ri * w[i] * gr[i] - xr[i] * c;
        pw[i] += gr[i] * xr[i] * ri;
      }
    }
  });
  for (int64_t i = 0; i < H; i++) dw[i] = 0.0f;
  for (int64_t t = 0; t < tasks; t++)
    for (int64_t i = 0; i < H; i++) dw[i] += part[t * H + i];
  return nullptr;
}

// ---- RoPE (rotate-half) fused with the [B, T, heads, D] -> [B, heads, T, D] transpose of attention ----

// ropeForward(x [B,T,Nh,D], cos [B,T,D], sin [B,T,D], y [B,Nh,T,D], B, T, Nh, D)
static napi_value RopeForward(napi_env env, napi_callback_info info) {
  Args a(env, info, 8, "ropeForward");
  const int64_t B = a.size(4, "ropeForward"), T = a.size(5, "ropeForward"), Nh = a.size(6, "ropeForward"), D = a.size(7, "ropeForward");
  const float *x = a.f32(0, B * T * Nh * D, "ropeForward"), *cs = a.f32(1, B * T * D, "ropeForward"), *sn = a.f32(2, B * T * D, "ropeForward");
  float* y = a.f32(3, B * T * Nh * D, "ropeForward");
  if (!a.ok) return nullptr;
  if (D % 2) { a.fail("ropeForward", "head_dim must be even"); return nullptr; }
  const int64_t h2 = D / 2;
  forRows(pool, B * T, Nh * D, [&](int64_t r0, int64_t r1) {
    for (int64_t bt = r0; bt < r1; bt++) {
      const int64_t b = bt / T, t = bt % T;
      const float *c = cs + bt * D, *s = sn + bt * D;
      for (int64_t h = 0; h < Nh; h++) {
        const float* xr = x + (bt * Nh + h) * D;
        float* yr = y + ((b * Nh + h) * T + t) * D;
        for (int64_t i = 0; i < h2; i++) {
          yr[i] = xr[i] * c[i] + (-xr[i + h2]) * s[i];
          yr[i + h2] = xr[i + h2] * c[i + h2] + xr[i] * s[i + h2];
        }
      }
    }
  });
  return nullptr;
}

// ropeBackward(dy [B,Nh,T,D], cos, sin, dx [B,T,Nh,D], B, T, Nh, D): dx_j = dy_j c_j + (j < D/2 ? dy_{j+D/2} s_{j+D/2}
// : -dy_{j-D/2} s_{j-D/2}), the transpose of the rotation.
static napi_value RopeBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, 8, "ropeBackward");
  const int64_t B = a.size(4, "ropeBackward"), T = a.size(5, "ropeBackward"), Nh = a.size(6, "ropeBackward"), D = a.size(7, "ropeBackward");
  const float *dy = a.f32(0, B * T * Nh * D, "ropeBackward"), *cs = a.f32(1, B * T * D, "ropeBackward"), *sn = a.f32(2, B * T * D, "ropeBackward");
  float* dx = a.f32(3, B * T * Nh * D, "ropeBackward");
  if (!a.ok) return nullptr;
  if (D % 2) { a.fail("ropeBackward", "head_dim must be even"); return nullptr; }
  const int64_t h2 = D / 2;
  forRows(pool, B * T, Nh * D, [&](int64_t r0, int64_t r1) {
    for (int64_t bt = r0; bt < r1; bt++) {
      const int64_t b = bt / T, t = bt % T;
      const float *c = cs + bt * D, *s = sn + bt * D;
      for (int64_t h = 0; h < Nh; h++) {
        const float* g = dy + ((b * Nh + h) * T + t) * D;
        float* dr = dx + (bt * Nh + h) * D;
        for (int64_t i = 0; i < h2; i++) {
          dr[i] = g[i] * c[i] + g[i + h2] * s[i + h2];
          dr[i + h2] = g[i + h2] * c[i + h2] - g[i] * s[i];
        }
      }
    }
  });
  return nullptr;
}

// ---- SiLU(gate) * up ----

constexpr int64_t ELEMS = 16384;

// swigluForward(gate, up, y, n)
static napi_value SwigluForward(napi_env env, napi_callback_info info) {
  Args a(env, info, 4, "swigluForward");
  const int64_t n = a.size(3, "swigluForward");
  const float *g = a.f32(0, n, "swigluForward"), *u = a.f32(1, n, "swigluForward");
  float* y = a.f32(2, n, "swigluForward");
  if (!a.ok) return nullptr;
  pool.run((n + ELEMS - 1) / ELEMS, [&](int64_t t) {
    const int64_t i0 = t * ELEMS, len = i0 + ELEMS < n ? ELEMS : n - i0;
    swigluRange(g + i0, u + i0, y + i0, len);
  });
  return nullptr;
}

// swigluBackward(gate, up, dy, dGate, dUp, n): dUp = dy silu(g), dGate = dy up sig(g) (1 + g (1 - sig(g))).
static napi_value SwigluBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, 6, "swigluBackward");
  const int64_t n = a.size(5, "swigluBackward");
  const float *g = a.f32(0, n, "swigluBackward"), *u = a.f32(1, n, "swigluBackward"), *dy = a.f32(2, n, "swigluBackward");
  float *dg = a.f32(3, n, "swigluBackward"), *du = a.f32(4, n, "swigluBackward");
  if (!a.ok) return nullptr;
  pool.run((n + ELEMS - 1) / ELEMS, [&](int64_t t) {
    const int64_t i0 = t * ELEMS, len = i0 + ELEMS < n ? ELEMS : n - i0;
    swigluGradRange(g + i0, u + i0, dy + i0, dg + i0, du + i0, len);
  });
  return nullptr;
}

// ---- masked softmax of attention: p = softmax(scores * scale + bias), bias [B, 1, T, S] broadcast over heads ----

// softmaxForward(scores [B,N,T,S], bias [B,T,S], p [B,N,T,S], B, N, T, S, scale)
static napi_value SoftmaxForward(napi_env env, napi_callback_info info) {
  Args a(env, info, 8, "softmaxForward");
  const int64_t B = a.size(3, "softmaxForward"), N = a.size(4, "softmaxForward"), T = a.size(5, "softmaxForward"), S = a.size(6, "softmaxForward");
  const float scale = (float)a.num(7, "softmaxForward");
  const float *x = a.f32(0, B * N * T * S, "softmaxForward"), *bias = a.f32(1, B * T * S, "softmaxForward");
  float* p = a.f32(2, B * N * T * S, "softmaxForward");
  if (!a.ok) return nullptr;
  forRows(pool, B * N * T, S, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* br = bias + ((r / (N * T)) * T + r % T) * S;
      const float* xr = x + r * S;
      float* pr = p + r * S;
      for (int64_t j = 0; j < S; j++) pr[j] = xr[j] * scale + br[j];
      const float inv = 1.0f / expShifted(pr, rowMax(pr, S), pr, S);
      for (int64_t j = 0; j < S; j++) pr[j] *= inv;
    }
  });
  return nullptr;
}

// softmaxBackward(p, dp, dScores, rows, S, scale): dScores = scale * p * (dp - sum(dp * p)).
static napi_value SoftmaxBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, 6, "softmaxBackward");
  const int64_t R = a.size(3, "softmaxBackward"), S = a.size(4, "softmaxBackward");
  const float scale = (float)a.num(5, "softmaxBackward");
  const float *p = a.f32(0, R * S, "softmaxBackward"), *dp = a.f32(1, R * S, "softmaxBackward");
  float* ds = a.f32(2, R * S, "softmaxBackward");
  if (!a.ok) return nullptr;
  forRows(pool, R, S, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float *pr = p + r * S, *gr = dp + r * S;
      float* dr = ds + r * S;
      const float d = dot2(gr, pr, S);
      for (int64_t j = 0; j < S; j++) dr[j] = scale * pr[j] * (gr[j] - d);
    }
  });
  return nullptr;
}

// ---- log-softmax + gather over rows of V logits ----

// logSoftmaxPick(z [R,V], labels [R], lse [R], picked [R], mean [R], hit [R], g [R,V] or [0], R, V): lse = logsumexp(z),
// picked = z[label], mean = mean(z), hit = 1 when the label is the first index of the row's max (tf.argMax), else 0;
// when g has R*V elements, also g = onehot(label) - softmax(z), the backward's direction (kept instead of recomputed).
static napi_value LogSoftmaxPick(napi_env env, napi_callback_info info) {
  Args a(env, info, 9, "logSoftmaxPick");
  const int64_t R = a.size(7, "logSoftmaxPick"), V = a.size(8, "logSoftmaxPick");
  const float* z = a.f32(0, R * V, "logSoftmaxPick");
  const int32_t* labels = a.i32(1, R, "logSoftmaxPick");
  float *lse = a.f32(2, R, "logSoftmaxPick"), *picked = a.f32(3, R, "logSoftmaxPick");
  float *mean = a.f32(4, R, "logSoftmaxPick"), *hit = a.f32(5, R, "logSoftmaxPick");
  size_t gLen = 0;
  float* g = nullptr;
  if (a.ok) {
    napi_typedarray_type type;
    void* ptr = nullptr;
    napi_value buf;
    size_t off = 0;
    napi_get_typedarray_info(env, a.argv[6], &type, &gLen, &ptr, &buf, &off);
    if (gLen != 0) g = a.f32(6, R * V, "logSoftmaxPick");
  }
  if (!a.ok) return nullptr;
  for (int64_t r = 0; r < R; r++)
    if (labels[r] < 0 || labels[r] >= V) { a.fail("logSoftmaxPick", "a label is outside [0, V)"); return nullptr; }
  forRows(pool, R, V, [&](int64_t r0, int64_t r1) {
    std::vector<float> e((size_t)V);
    for (int64_t r = r0; r < r1; r++) {
      const float* zr = z + r * V;
      const float m = rowMax(zr, V);
      const float sumE = expShifted(zr, m, e.data(), V);
      lse[r] = m + logf(sumE);
      picked[r] = zr[labels[r]];
      if (g) {
        float* gr = g + r * V;
        const float k = -1.0f / sumE;
        for (int64_t j = 0; j < V; j++) gr[j] = e[j] * k;
        gr[labels[r]] += 1.0f;
      }
      float acc[L] = {0};
      int64_t i = 0;
      for (; i + L <= V; i += L)
        for (int l = 0; l < L; l++) acc[l] += zr[i + l];
      float sum = 0;
      for (int l = 0; l < L; l++) sum += acc[l];
      for (; i < V; i++) sum += zr[i];
      mean[r] = sum / (float)V;
      int64_t first = 0;
      while (first < V && !(zr[first] == m)) first++;
      hit[r] = first == labels[r] ? 1.0f : 0.0f;
    }
  });
  return nullptr;
}

// logSoftmaxPickGrad(z, labels, scale [R], g [R,V], R, V): g = scale * (onehot(label) - softmax(z)).
static napi_value LogSoftmaxPickGrad(napi_env env, napi_callback_info info) {
  Args a(env, info, 6, "logSoftmaxPickGrad");
  const int64_t R = a.size(4, "logSoftmaxPickGrad"), V = a.size(5, "logSoftmaxPickGrad");
  const float* z = a.f32(0, R * V, "logSoftmaxPickGrad");
  const int32_t* labels = a.i32(1, R, "logSoftmaxPickGrad");
  const float* scale = a.f32(2, R, "logSoftmaxPickGrad");
  float* g = a.f32(3, R * V, "logSoftmaxPickGrad");
  if (!a.ok) return nullptr;
  for (int64_t r = 0; r < R; r++)
    if (labels[r] < 0 || labels[r] >= V) { a.fail("logSoftmaxPickGrad", "a label is outside [0, V)"); return nullptr; }
  forRows(pool, R, V, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      float* gr = g + r * V;
      const float s = scale[r];
      if (s == 0.0f) {
        memset(gr, 0, sizeof(float) * V);
        continue;
      }
      const float* zr = z + r * V;
      const float k = -s / expShifted(zr, rowMax(zr, V), gr, V);
      for (int64_t j = 0; j < V; j++) gr[j] *= k;
      gr[labels[r]] += s;
    }
  });
  return nullptr;
}

// scaleRows(x [R,V], scale [R], y [R,V], R, V): y = x * scale per row.
static napi_value ScaleRows(napi_env env, napi_callback_info info) {
  Args a(env, info, 5, "scaleRows");
  const int64_t R = a.size(3, "scaleRows"), V = a.size(4, "scaleRows");
  const float *x = a.f32(0, R * V, "scaleRows"), *sc = a.f32(1, R, "scaleRows");
  float* y = a.f32(2, R * V, "scaleRows");
  if (!a.ok) return nullptr;
  forRows(pool, R, V, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++)
      for (int64_t j = 0; j < V; j++) y[r * V + j] = x[r * V + j] * sc[r];
  });
  return nullptr;
}

// ---- elementwise add and row gather (the wasm backend's stock Add and GatherV2 are slow on these shapes) ----

HOT static void addRange(const float* a, const float* b, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

// add(a, b, y, n): y = a + b, same shapes.
static napi_value Add(napi_env env, napi_callback_info info) {
  Args a(env, info, 4, "add");
  const int64_t n = a.size(3, "add");
  const float *x = a.f32(0, n, "add"), *z = a.f32(1, n, "add");
  float* y = a.f32(2, n, "add");
  if (!a.ok) return nullptr;
  pool.run((n + 4 * ELEMS - 1) / (4 * ELEMS), [&](int64_t t) {
    const int64_t i0 = t * 4 * ELEMS, len = i0 + 4 * ELEMS < n ? 4 * ELEMS : n - i0;
    addRange(x + i0, z + i0, y + i0, len);
  });
  return nullptr;
}

// gatherRows(table [V, W], ids [R], out [R, W], R, V, W): out[r] = table[ids[r]].
static napi_value GatherRows(napi_env env, napi_callback_info info) {
  Args a(env, info, 6, "gatherRows");
  const int64_t R = a.size(3, "gatherRows"), V = a.size(4, "gatherRows"), W = a.size(5, "gatherRows");
  const float* table = a.f32(0, V * W, "gatherRows");
  const int32_t* ids = a.i32(1, R, "gatherRows");
  float* out = a.f32(2, R * W, "gatherRows");
  if (!a.ok) return nullptr;
  for (int64_t r = 0; r < R; r++)
    if (ids[r] < 0 || ids[r] >= V) { a.fail("gatherRows", "an index is outside [0, V)"); return nullptr; }
  for (int64_t r = 0; r < R; r++) memcpy(out + r * W, table + (int64_t)ids[r] * W, sizeof(float) * W);
  return nullptr;
}

// ---- the LoRA linear (kernels/lora-linear.ts): y = x W^T + (scale * x A^T) B^T, and its three input gradients ----
// x [M, I], W [O, I], A [r, I], B [O, r], dy [M, O]; each product is gemm.h's (blocks of the output fixed by the shape,
// so any thread count gives the same bits). The order of the roundings is the plain-ops reference's.

static void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* a, const float* b, float beta, float* c) {
  gemmDeterministic(pool, ta, tb, M, N, K, a, 0, b, 0, beta, c, 1);
}

static void scaleInPlace(float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; i++) x[i] = x[i] * s;
}

struct LoraDims {
  int64_t M, I, O, r;
  float scale;
};

static bool loraDims(Args& a, size_t i, LoraDims* d, const char* name) {
  d->M = a.size(i, name), d->I = a.size(i + 1, name), d->O = a.size(i + 2, name), d->r = a.size(i + 3, name);
  d->scale = (float)a.num(i + 4, name);
  return a.ok;
}

// The rank-r side of the LoRA linear, scaled: scale * (x A^T) [M, r] (the forward's, recomputed for dB).
static std::vector<float> loraDown(const LoraDims& d, const float* x, const float* A) {
  std::vector<float> down((size_t)(d.M * d.r));
  gemm(false, true, d.M, d.r, d.I, x, A, 0.0f, down.data());
  scaleInPlace(down.data(), d.M * d.r, d.scale);
  return down;
}

// Its gradient side, scaled: scale * (dy B) [M, r] (shared by dx and dA).
static std::vector<float> loraUp(const LoraDims& d, const float* dy, const float* B) {
  std::vector<float> t((size_t)(d.M * d.r));
  gemm(false, false, d.M, d.r, d.O, dy, B, 0.0f, t.data());
  scaleInPlace(t.data(), d.M * d.r, d.scale);
  return t;
}

// loraForward(x, w, A, B, y, M, I, O, r, scale): y = x W^T, then y += (scale * (x A^T)) B^T.
static napi_value LoraForward(napi_env env, napi_callback_info info) {
  Args a(env, info, 10, "loraForward");
  LoraDims d;
  if (!loraDims(a, 5, &d, "loraForward")) return nullptr;
  const float *x = a.f32(0, d.M * d.I, "loraForward"), *w = a.f32(1, d.O * d.I, "loraForward");
  const float *A = a.f32(2, d.r * d.I, "loraForward"), *B = a.f32(3, d.O * d.r, "loraForward");
  float* y = a.f32(4, d.M * d.O, "loraForward");
  if (!a.ok) return nullptr;
  gemm(false, true, d.M, d.O, d.I, x, w, 0.0f, y);
  const std::vector<float> down = loraDown(d, x, A);
  gemm(false, true, d.M, d.O, d.r, down.data(), B, 1.0f, y);
  return nullptr;
}

// loraGradX(dy, w, A, B, dx, M, I, O, r, scale): t = scale * (dy B); dx = dy W + t A.
static napi_value LoraGradX(napi_env env, napi_callback_info info) {
  Args a(env, info, 10, "loraGradX");
  LoraDims d;
  if (!loraDims(a, 5, &d, "loraGradX")) return nullptr;
  const float *dy = a.f32(0, d.M * d.O, "loraGradX"), *w = a.f32(1, d.O * d.I, "loraGradX");
  const float *A = a.f32(2, d.r * d.I, "loraGradX"), *B = a.f32(3, d.O * d.r, "loraGradX");
  float* dx = a.f32(4, d.M * d.I, "loraGradX");
  if (!a.ok) return nullptr;
  const std::vector<float> t = loraUp(d, dy, B);
  gemm(false, false, d.M, d.I, d.O, dy, w, 0.0f, dx);
  gemm(false, false, d.M, d.I, d.r, t.data(), A, 1.0f, dx);
  return nullptr;
}

// loraGradA(dy, x, B, dA, M, I, O, r, scale): dA = (scale * (dy B))^T x.
static napi_value LoraGradA(napi_env env, napi_callback_info info) {
  Args a(env, info, 9, "loraGradA");
  LoraDims d;
  if (!loraDims(a, 4, &d, "loraGradA")) return nullptr;
  const float *dy = a.f32(0, d.M * d.O, "loraGradA"), *x = a.f32(1, d.M * d.I, "loraGradA"), *B = a.f32(2, d.O * d.r, "loraGradA");
  float* dA = a.f32(3, d.r * d.I, "loraGradA");
  if (!a.ok) return nullptr;
  const std::vector<float> t = loraUp(d, dy, B);
  gemm(true, false, d.r, d.I, d.M, t.data(), x, 0.0f, dA);
  return nullptr;
}

// loraGradB(dy, x, A, dB, M, I, O, r, scale): dB = dy^T (scale * (x A^T)), the forward's rank-r side recomputed.
static napi_value LoraGradB(napi_env env, napi_callback_info info) {
  Args a(env, info, 9, "loraGradB");
  LoraDims d;
  if (!loraDims(a, 4, &d, "loraGradB")) return nullptr;
  const float *dy = a.f32(0, d.M * d.O, "loraGradB"), *x = a.f32(1, d.M * d.I, "loraGradB"), *A = a.f32(2, d.r * d.I, "loraGradB");
  float* dB = a.f32(3, d.O * d.r, "loraGradB");
  if (!a.ok) return nullptr;
  const std::vector<float> down = loraDown(d, x, A);
  gemm(true, false, d.O, d.r, d.M, dy, down.data(), 0.0f, dB);
  return nullptr;
}

// ---- AdamW (kernels/adamw.ts): the global gradient norm and one tensor's update ----
// Plain scalar loops in the default target (no FMA contraction), each rounding in the order of the plain-ops reference
// in train/optimizer.ts, so the update is that reference's float32 result. Single-threaded: the LoRA tensors are small.

// sumSquares(g, n): sum of g[i]^2 in float64, in index order.
static napi_value SumSquares(napi_env env, napi_callback_info info) {
  Args a(env, info, 2, "sumSquares");
  const int64_t n = a.size(1, "sumSquares");
  const float* g = a.f32(0, n, "sumSquares");
  if (!a.ok) return nullptr;
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += (double)g[i] * (double)g[i];
  napi_value out;
  napi_create_double(env, s, &out);
  return out;
}

// One statement per float32 operation (clang contracts only within an expression) and fp-contract off for GCC: no
// fused multiply-add, on any target. decay = 1 leaves p as it is (x * 1 is exact).
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("fp-contract=off")))
#endif
static void adamwLoop(const float* p, const float* g, const float* m, const float* v, float* pOut, float* mOut, float* vOut, int64_t n,
                      float coef, float b1, float c1, float b2, float c2, float sbc2, float eps, float decay, float rate) {
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i] * coef;
    const float ma = m[i] * b1;
    const float mb = gi * c1;
    const float mi = ma + mb;
    const float sq = gi * gi;
    const float va = v[i] * b2;
    const float vb = sq * c2;
    const float vi = va + vb;
    const float root = sqrtf(vi);
    const float q = root / sbc2;
    const float denom = q + eps;
    const float ratio = mi / denom;
    const float upd = ratio * rate;
    const float base = p[i] * decay;
    pOut[i] = base - upd;
    mOut[i] = mi;
    vOut[i] = vi;
  }
}

// adamwUpdate(p, g, m, v, pOut, mOut, vOut, n, k) with k = Float32Array [coef, b1, 1-b1, b2, 1-b2, sqrt(bc2), eps,
// 1 - lr*wd (1 when this tensor is not decayed), lr/bc1]:
// g' = g coef; m' = m b1 + g' (1-b1); v' = v b2 + g'^2 (1-b2); p' = p decay - (m' / (sqrt(v') / sqrt(bc2) + eps)) rate.
static napi_value AdamwUpdate(napi_env env, napi_callback_info info) {
  Args a(env, info, 9, "adamwUpdate");
  const int64_t n = a.size(7, "adamwUpdate");
  const float *p = a.f32(0, n, "adamwUpdate"), *g = a.f32(1, n, "adamwUpdate"), *m = a.f32(2, n, "adamwUpdate"), *v = a.f32(3, n, "adamwUpdate");
  float *pOut = a.f32(4, n, "adamwUpdate"), *mOut = a.f32(5, n, "adamwUpdate"), *vOut = a.f32(6, n, "adamwUpdate");
  const float* k = a.f32(8, 9, "adamwUpdate");
  if (!a.ok) return nullptr;
  const float coef = k[0], b1 = k[1], c1 = k[2], b2 = k[3], c2 = k[4], sbc2 = k[5], eps = k[6], decay = k[7], rate = k[8];
  adamwLoop(p, g, m, v, pOut, mOut, vOut, n, coef, b1, c1, b2, c2, sbc2, eps, decay, rate);
  return nullptr;
}

// ---- threads ----

// setThreads(n): the pool's size (OpenBLAS stays at one thread: gemm.h spreads products over the pool). Returns it.
static napi_value SetThreads(napi_env env, napi_callback_info info) {
  Args a(env, info, 1, "setThreads");
  int64_t n = a.size(0, "setThreads");
  if (!a.ok) return nullptr;
  if (n < 1) n = 1;
  if (n > 64) n = 64;
  pool.resize((int)n);
#ifndef __APPLE__
  if (openblas_set_num_threads) openblas_set_num_threads(1);
#endif
  napi_value out;
  napi_create_int32(env, pool.threads(), &out);
  return out;
}

static napi_value GetThreads(napi_env env, napi_callback_info) {
  napi_value out;
  napi_create_int32(env, pool.threads(), &out);
  return out;
}

void RegisterAttention(napi_env env, napi_value exports, Pool& pool);  // attention.cc
void RegisterLayer(napi_env env, napi_value exports, Pool& pool);  // layer.cc

void RegisterFused(napi_env env, napi_value exports) {
  const struct { const char* name; napi_callback fn; } fns[] = {
      {"rmsNormForward", RmsNormForward}, {"rmsNormBackward", RmsNormBackward},
      {"ropeForward", RopeForward}, {"ropeBackward", RopeBackward},
      {"swigluForward", SwigluForward}, {"swigluBackward", SwigluBackward},
      {"softmaxForward", SoftmaxForward}, {"softmaxBackward", SoftmaxBackward},
      {"logSoftmaxPick", LogSoftmaxPick}, {"logSoftmaxPickGrad", LogSoftmaxPickGrad},
      {"add", Add}, {"gatherRows", GatherRows}, {"scaleRows", ScaleRows},
      {"loraForward", LoraForward}, {"loraGradX", LoraGradX}, {"loraGradA", LoraGradA}, {"loraGradB", LoraGradB},
      {"sumSquares", SumSquares}, {"adamwUpdate", AdamwUpdate},
      {"setThreads", SetThreads}, {"getThreads", GetThreads},
  };
  for (const auto& f : fns) {
    napi_value v;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.fn, nullptr, &v);
    napi_set_named_property(env, exports, f.name, v);
  }
  RegisterAttention(env, exports, pool);
  RegisterLayer(env, exports, pool);
}
