// The attention core of a Llama layer without a KV cache (kernels/attention-core.ts), forward and backward, on
// caller-owned Float32Arrays: RoPE on q and k, grouped-query scores q k^T, the causal + key-mask softmax, probs x v and
// the merge of heads back to [B, T, N*D]. HF eager attention with repeat_kv; the arithmetic follows fused.cc's RoPE and
// masked softmax. Each (batch, kv head) is one pool task whose products are cblas_sgemm calls on task-local buffers
// (OpenBLAS runs single-threaded in this addon: gemm.h), so any thread count gives the same bits. The row math is
// rowmath.h's. The backward recomputes the probabilities (nothing but the inputs is saved). Also the RoPE tables of a
// forward's positions (ropeTables). Leaves out: a KV cache in the core (the model's op chain serves generate), dropout,
// other dtypes.
#include <node_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <vector>

#include "args.h"
#include "pool.h"
#include "rowmath.h"

#ifdef __APPLE__
#define ACCELERATE_NEW_LAPACK
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
#endif


namespace {

Pool* pool = nullptr;  // fused.cc's, so setThreads sizes it

/** attentionBias's value for a key the query may not see (kernels/attention-core.ts MASKED). */
constexpr float MASKED = -1e9f;

struct Args : AddonArgs {
  Args(napi_env e, napi_callback_info info, size_t want, const char* n) : AddonArgs(e, info, want, "attention addon", n) {}
};

/** c [M, N] (row stride ldc) = op(a) op(b), row-major; op(a) is [M, K], op(b) is [K, N]. */
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, a, (int)lda,
              b, (int)ldb, 0.0f, c, (int)ldc);
}

// ---- one (batch, kv head) task ----

struct Dims {
  int64_t B, T, N, K, D, G;
  float scale;
};

/** HF rotate-half RoPE of one head row (fused.cc's ropeForward). */
inline void rope(const float* x, const float* c, const float* s, float* y, int64_t D) {
  const int64_t h = D / 2;
  for (int64_t i = 0; i < h; i++) {
    y[i] = x[i] * c[i] + (-x[i + h]) * s[i];
    y[i + h] = x[i + h] * c[i + h] + x[i] * s[i + h];
  }
}

/** The transpose of rope (fused.cc's ropeBackward). */
inline void ropeGrad(const float* g, const float* c, const float* s, float* dx, int64_t D) {
  const int64_t h = D / 2;
  for (int64_t i = 0; i < h; i++) {
    dx[i] = g[i] * c[i] + g[i + h] * s[i + h];
    dx[i + h] = g[i + h] * c[i + h] - g[i] * s[i];
  }
}

/** The buffers of a task: rotated queries of the G heads stacked by rows [G*T, D], rotated keys [T, D], probs [G*T, T]. */
struct Scratch {
  std::vector<float> qr, kr, p;
  explicit Scratch(const Dims& d) : qr((size_t)(d.G * d.T * d.D)), kr((size_t)(d.T * d.D)), p((size_t)(d.G * d.T * d.T)) {}
};

/**
 * Keys a query row reads: j <= t when query t sees a token (a later key's probability is exactly 0: expFast returns 0
 * below -87), all T when it sees none (every score is then -1e9 in float32 and the row is uniform, as the reference).
 * `first` is the row's first token slot (T when it has none).
 */
inline int64_t keysOf(int64_t t, int64_t first, int64_t T) { return t >= first ? t + 1 : T; }

/** n rounded up to whole lane blocks (at most T): the loops stay vector-wide, the extra keys have probability 0. */
inline int64_t laneKeys(int64_t n, int64_t T) {
  const int64_t up = (n + L - 1) / L * L;
  return up < T ? up : T;
}

/** The first token slot of a mask row, T when it has none. */
inline int64_t firstToken(const float* m, int64_t T) {
  int64_t j = 0;
  while (j < T && !(m[j] > 0.0f)) j++;
  return j;
}

/**
 * Rotated q and k of batch b, kv head kh, and the probabilities softmax(q k^T * scale + bias) with bias as
 * attentionBias builds it: (1 - mask[j]) * MASKED for a key j <= t, MASKED for a later one. Query head n = kh*G + g.
 */
void probs(const Dims& d, int64_t b, int64_t kh, const float* q, const float* k, const float* cs, const float* sn, const float* mask,
           Scratch& w) {
  const int64_t T = d.T, D = d.D, G = d.G;
  for (int64_t t = 0; t < T; t++) {
    const int64_t bt = b * T + t;
    const float *c = cs + bt * D, *s = sn + bt * D;
    for (int64_t g = 0; g < G; g++) rope(q + bt * d.N * D + (kh * G + g) * D, c, s, w.qr.data() + (g * T + t) * D, D);
    rope(k + bt * d.K * D + kh * D, c, s, w.kr.data() + t * D, D);
  }
  gemm(false, true, G * T, T, D, w.qr.data(), D, w.kr.data(), D, w.p.data(), T);  // scores [G*T, T]
  const float* m = mask + b * T;
  const int64_t first = firstToken(m, T);
  std::vector<float> bias((size_t)T);
  for (int64_t j = 0; j < T; j++) bias[j] = (1.0f - m[j]) * MASKED;
  for (int64_t r = 0; r < G * T; r++) {
    const int64_t t = r % T, n = laneKeys(keysOf(t, first, T), T);
    float* pr = w.p.data() + r * T;
    for (int64_t j = 0; j < n; j++) pr[j] = pr[j] * d.scale + (j <= t ? bias[j] : MASKED);
    const float inv = 1.0f / expShifted(pr, rowMax(pr, n), pr, n);
    for (int64_t j = 0; j < n; j++) pr[j] *= inv;
    for (int64_t j = n; j < T; j++) pr[j] = 0.0f;
  }
}

bool dims(Args& a, size_t i, Dims* d) {
  d->B = a.size(i), d->T = a.size(i + 1), d->N = a.size(i + 2), d->K = a.size(i + 3), d->D = a.size(i + 4);
  d->scale = (float)a.num(i + 5);
  if (!a.ok) return false;
  if (d->N % d->K) a.fail("query heads are not a multiple of kv heads");
  else if (d->D % 2) a.fail("head_dim must be even");
  d->G = d->N / (d->K > 0 ? d->K : 1);
  return a.ok;
}

// attentionForward(q [B,T,N*D], k [B,T,K*D], v [B,T,K*D], cos [B,T,D], sin [B,T,D], mask [B,T], out [B,T,N*D],
//                  B, T, N, K, D, scale)
napi_value AttentionForward(napi_env env, napi_callback_info info) {
  Args a(env, info, 13, "attentionForward");
  Dims d;
  if (!dims(a, 7, &d)) return nullptr;
  const int64_t BT = d.B * d.T, D = d.D, T = d.T, G = d.G;
  const float *q = a.f32(0, BT * d.N * D), *k = a.f32(1, BT * d.K * D), *v = a.f32(2, BT * d.K * D);
  const float *cs = a.f32(3, BT * D), *sn = a.f32(4, BT * D), *mask = a.f32(5, BT);
  float* out = a.f32(6, BT * d.N * D);
  if (!a.ok) return nullptr;
  pool->run(d.B * d.K, [&](int64_t task) {
    const int64_t b = task / d.K, kh = task % d.K;
    Scratch w(d);
    probs(d, b, kh, q, k, cs, sn, mask, w);
    std::vector<float> ctx((size_t)(G * T * D));
    gemm(false, false, G * T, D, T, w.p.data(), T, v + b * T * d.K * D + kh * D, d.K * D, ctx.data(), D);  // [G*T, D]
    for (int64_t g = 0; g < G; g++)
      for (int64_t t = 0; t < T; t++) memcpy(out + (b * T + t) * d.N * D + (kh * G + g) * D, ctx.data() + (g * T + t) * D, sizeof(float) * D);
  });
  return nullptr;
}

// attentionBackward(q, k, v, cos, sin, mask, dOut [B,T,N*D], dq [B,T,N*D], dk [B,T,K*D], dv [B,T,K*D], B, T, N, K, D,
// scale): with P recomputed and dO the head's rows of dOut, dV = P^T dO, dS = scale * P * (dO V^T - rowsum(P * dO V^T)),
// dq = rope^T(dS k_rot), dk = rope^T(dS^T q_rot). The G heads of a kv head sum into its dk and dv inside the products.
napi_value AttentionBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, 16, "attentionBackward");
  Dims d;
  if (!dims(a, 10, &d)) return nullptr;
  const int64_t BT = d.B * d.T, D = d.D, T = d.T, G = d.G, N = d.N, K = d.K;
  const float *q = a.f32(0, BT * N * D), *k = a.f32(1, BT * K * D), *v = a.f32(2, BT * K * D);
  const float *cs = a.f32(3, BT * D), *sn = a.f32(4, BT * D), *mask = a.f32(5, BT), *dout = a.f32(6, BT * N * D);
  float *dq = a.f32(7, BT * N * D), *dk = a.f32(8, BT * K * D), *dv = a.f32(9, BT * K * D);
  if (!a.ok) return nullptr;
  pool->run(d.B * d.K, [&](int64_t task) {
    const int64_t b = task / K, kh = task % K;
    Scratch w(d);
    probs(d, b, kh, q, k, cs, sn, mask, w);
    const float* vh = v + b * T * K * D + kh * D;  // [T, D], row stride K*D
    std::vector<float> dO((size_t)(G * T * D)), dp((size_t)(G * T * T)), dqr((size_t)(G * T * D)), dkr((size_t)(T * D));
    for (int64_t g = 0; g < G; g++)
      for (int64_t t = 0; t < T; t++) memcpy(dO.data() + (g * T + t) * D, dout + (b * T + t) * N * D + (kh * G + g) * D, sizeof(float) * D);
    gemm(true, false, T, D, G * T, w.p.data(), T, dO.data(), D, dv + b * T * K * D + kh * D, K * D);  // dV [T, D]
    gemm(false, true, G * T, T, D, dO.data(), D, vh, K * D, dp.data(), T);  // dP [G*T, T]
    const int64_t first = firstToken(mask + b * T, T);
    for (int64_t r = 0; r < G * T; r++) {
      const int64_t n = laneKeys(keysOf(r % T, first, T), T);
      const float* pr = w.p.data() + r * T;
      float* gr = dp.data() + r * T;
      const float s = dot2(gr, pr, n);
      for (int64_t j = 0; j < n; j++) gr[j] = d.scale * pr[j] * (gr[j] - s);
      for (int64_t j = n; j < T; j++) gr[j] = 0.0f;
    }
    gemm(false, false, G * T, D, T, dp.data(), T, w.kr.data(), D, dqr.data(), D);  // d q_rot [G*T, D]
    gemm(true, false, T, D, G * T, dp.data(), T, w.qr.data(), D, dkr.data(), D);  // d k_rot [T, D]
    for (int64_t t = 0; t < T; t++) {
      const int64_t bt = b * T + t;
      const float *c = cs + bt * D, *s = sn + bt * D;
      for (int64_t g = 0; g < G; g++) ropeGrad(dqr.data() + (g * T + t) * D, c, s, dq + bt * N * D + (kh * G + g) * D, D);
      ropeGrad(dkr.data() + t * D, c, s, dk + bt * K * D + kh * D, D);
    }
  });
  return nullptr;
}

// ropeTables(mask [B,S], invFreq [D/2], cos [B,T,D], sin [B,T,D], B, S, T, D): the RoPE tables of the last T of S
// slots, at HF `generate`'s positions (cumsum(mask) - 1, and 1 at a pad: llama.ts positionsFromMask), angle
// pos * inv_freq in float32, cos and sin rounded from double (as tfjs' cpu backend), the two halves equal.
napi_value RopeTables(napi_env env, napi_callback_info info) {
  Args a(env, info, 8, "ropeTables");
  const int64_t B = a.size(4), S = a.size(5), T = a.size(6), D = a.size(7);
  if (a.ok && (T > S || D % 2)) a.fail("T > S or an odd head_dim");
  const float *mask = a.f32(0, B * S), *inv = a.f32(1, D / 2);
  float *cs = a.f32(2, B * T * D), *sn = a.f32(3, B * T * D);
  if (!a.ok) return nullptr;
  const int64_t h = D / 2;
  for (int64_t b = 0; b < B; b++) {
    float seen = 0.0f;
    for (int64_t j = 0; j < S; j++) {
      seen += mask[b * S + j];
      if (j < S - T) continue;
      const float pos = mask[b * S + j] > 0.0f ? seen - 1.0f : 1.0f;
      float *c = cs + (b * T + j - (S - T)) * D, *s = sn + (b * T + j - (S - T)) * D;
      for (int64_t i = 0; i < h; i++) {
        const float angle = pos * inv[i];
        c[i] = c[i + h] = (float)cos((double)angle);
        s[i] = s[i + h] = (float)sin((double)angle);
      }
    }
  }
  return nullptr;
}

}  // namespace

/** Adds attentionForward, attentionBackward and ropeTables to the addon's exports; tasks run on `fusedPool`. */
void RegisterAttention(napi_env env, napi_value exports, Pool& fusedPool) {
  pool = &fusedPool;
  const struct { const char* name; napi_callback fn; } fns[] = {
      {"attentionForward", AttentionForward}, {"attentionBackward", AttentionBackward}, {"ropeTables", RopeTables},
  };
  for (const auto& f : fns) {
    napi_value v;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.fn, nullptr, &v);
    napi_set_named_property(env, exports, f.name, v);
  }
}
