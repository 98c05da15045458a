// Whole halves of a Llama decoder layer (HF `LlamaDecoderLayer`'s two residual blocks) as one addon call each way
// (kernels/decoder-layer.ts), on caller-owned Float32Arrays, with frozen weights and no bias:
// - the MLP half, y = x1 + down(silu(gate(h2)) * up(h2)), h2 = rmsnorm(x1), without adapters: the backward gives dx1;
// - the attention half, y = x + o(core(q(h), k(h), v(h))), h = rmsnorm(x), LoRA on any of q/k/v/o (rank 0: none): the
//   core is attention.cc's, called through the addon's exports on views of our buffers; the backward gives dx and each
//   adapter's dA, dB.
// Each forward also writes a stash that its backward reads. The row math is rowmath.h's (fused.cc's too), the
// products are gemm.h's (blocks fixed by the shape), and elementwise work is cut into tasks fixed by the shape, so any
// thread count gives the same bits. Leaves out: weight gradients, bias, LoRA dropout, a KV cache.
#include <node_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <vector>

#include "args.h"
#include "gemm.h"
#include "pool.h"
#include "rowmath.h"


namespace {

Pool* pool = nullptr;  // fused.cc's, so setThreads sizes it

struct Args : AddonArgs {
  Args(napi_env e, napi_callback_info info, size_t want, const char* n) : AddonArgs(e, info, want, "layer addon", n) {}
};

/**
 * Scratch of n floats in `slot` (contents undefined), grow-only per thread: a call's big temporaries cost no allocation
 * and no zeroing after the first. Per thread, so Node workers calling the addon at once never share one.
 */
float* buffer(int slot, int64_t n) {
  thread_local std::vector<float> bufs[3];
  std::vector<float>& b = bufs[slot];
  if ((int64_t)b.size() < n) b.resize((size_t)n);
  return b.data();
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
  float *h2 = buffer(0, M * H), *act = buffer(1, M * I);
  forRows(*pool, M, H, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x1 + r * H;
      float* hr = h2 + r * H;
      const float ri = 1.0f / sqrtf(sumSq(xr, H) / (float)H + eps);
      st.rinv[r] = ri;
      for (int64_t i = 0; i < H; i++) hr[i] = xr[i] * ri * nw[i];
      memcpy(st.x1 + r * H, xr, sizeof(float) * H);
    }
  });
  gemm(false, true, M, I, H, h2, gw, 0.0f, st.gate);
  gemm(false, true, M, I, H, h2, uw, 0.0f, st.up);
  forRows(*pool, M, I, [&](int64_t r0, int64_t r1) { swigluRange(st.gate + r0 * I, st.up + r0 * I, act + r0 * I, (r1 - r0) * I); });
  gemm(false, true, M, H, I, act, dw, 0.0f, y);
  forRows(*pool, M, H, [&](int64_t r0, int64_t r1) {
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
  float *dg = buffer(0, M * I), *du = buffer(1, M * I), *dh = buffer(2, M * H);
  gemm(false, false, M, I, H, dy, dw, 0.0f, dg);
  forRows(*pool, M, I, [&](int64_t r0, int64_t r1) {
    swigluGradRange(st.gate + r0 * I, st.up + r0 * I, dg + r0 * I, dg + r0 * I, du + r0 * I, (r1 - r0) * I);
  });
  gemm(false, false, M, H, I, dg, gw, 0.0f, dh);
  gemm(false, false, M, H, I, du, uw, 1.0f, dh);
  forRows(*pool, M, H, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float *xr = st.x1 + r * H, *gr = dh + r * H, *yr = dy + r * H;
      float* dr = dx + r * H;
      const float ri = st.rinv[r];
      const float c = dot3(nw, gr, xr, H) / (float)H * ri * ri * ri;
      for (int64_t i = 0; i < H; i++) dr[i] = yr[i] + (ri * nw[i] * gr[i] - xr[i] * c);
    }
  });
  return nullptr;
}

// ---- the attention half: y = x + o(core(q(h), k(h), v(h))), h = rmsnorm(x), each projection W (+ scale (. A^T) B^T) ----

/**
 * Calls exports[name](args...) (attention.cc's core on views of our buffers) through the reference to this env's
 * exports that RegisterLayer gave the function as data (one per env: Node workers load the addon again); false when it
 * threw.
 */
bool callExport(Args& a, const char* name, std::vector<napi_value> args) {
  if (!a.ok) return false;
  napi_value exports, fn, global, result;
  if (!a.data || napi_get_reference_value(a.env, *static_cast<napi_ref*>(a.data), &exports) != napi_ok || napi_get_named_property(a.env, exports, name, &fn) != napi_ok
      || napi_get_global(a.env, &global) != napi_ok) {
    a.fail("cannot reach the attention core");
    return false;
  }
  if (napi_call_function(a.env, global, fn, args.size(), args.data(), &result) != napi_ok) {
    a.ok = false;  // its exception is pending
    return false;
  }
  return true;
}

napi_value num(napi_env env, double x) {
  napi_value v;
  napi_create_double(env, x, &v);
  return v;
}

/** A fresh Float32Array of n floats (zeroed) and its data. */
napi_value scratch(Args& a, int64_t n, float** data) {
  napi_value buf, out;
  void* p = nullptr;
  if (!a.ok || napi_create_arraybuffer(a.env, 4 * (size_t)(n > 0 ? n : 1), &p, &buf) != napi_ok
      || napi_create_typedarray(a.env, napi_float32_array, (size_t)n, buf, 0, &out) != napi_ok) {
    a.fail("cannot allocate scratch");
    return nullptr;
  }
  memset(p, 0, 4 * (size_t)(n > 0 ? n : 1));
  *data = static_cast<float*>(p);
  return out;
}

/** One projection: W [O, In], its adapter A [r, In], B [O, r] (r = 0: none). */
struct Proj {
  const float *W, *A, *B;
  int64_t O, In, r;
};

/** y [M, O] = x W^T + scale (x A^T) B^T, as fused.cc's loraForward. */
void projForward(const Proj& p, int64_t M, const float* x, float scale, float* y) {
  gemm(false, true, M, p.O, p.In, x, p.W, 0.0f, y);
  if (p.r == 0) return;
  std::vector<float> down((size_t)(M * p.r));
  gemm(false, true, M, p.r, p.In, x, p.A, 0.0f, down.data());
  for (auto& v : down) v *= scale;
  gemm(false, true, M, p.O, p.r, down.data(), p.B, 1.0f, y);
}

/** dx [M, In] (+)= dy W + t A with t = scale (dy B); dA = t^T x; dB = dy^T (scale x A^T) (fused.cc's loraGrad*). */
void projBackward(const Proj& p, int64_t M, const float* x, const float* dy, float scale, float beta, float* dx, float* dA, float* dB) {
  gemm(false, false, M, p.In, p.O, dy, p.W, beta, dx);
  if (p.r == 0) return;
  std::vector<float> t((size_t)(M * p.r)), down((size_t)(M * p.r));
  gemm(false, false, M, p.r, p.O, dy, p.B, 0.0f, t.data());
  for (auto& v : t) v *= scale;
  gemm(false, false, M, p.In, p.r, t.data(), p.A, 1.0f, dx);
  gemm(true, false, p.r, p.In, M, t.data(), x, 0.0f, dA);
  gemm(false, true, M, p.r, p.In, x, p.A, 0.0f, down.data());
  for (auto& v : down) v *= scale;
  gemm(true, false, p.O, p.r, M, dy, down.data(), 0.0f, dB);
}

/** Sizes of the attention half: B, T, N, K, D, H, and the four ranks. */
struct AttnDims {
  int64_t B, T, N, K, D, H, rq, rk, rv, ro, M, Nd, Kd;
  /** x, 1/rms, q, k, v, att, then cos, sin, mask (the backward's core reads them from here). */
  int64_t stash() const { return M * H + M + M * Nd + 2 * M * Kd + M * Nd + 2 * M * D + M; }
};

/** Reads the 10 sizes from argv[i...]: B, T, N, K, D, H, rq, rk, rv, ro. */
AttnDims attnDims(Args& a, size_t i) {
  AttnDims d;
  d.B = a.size(i), d.T = a.size(i + 1), d.N = a.size(i + 2), d.K = a.size(i + 3), d.D = a.size(i + 4), d.H = a.size(i + 5);
  d.rq = a.size0(i + 6), d.rk = a.size0(i + 7), d.rv = a.size0(i + 8), d.ro = a.size0(i + 9);
  d.M = d.B * d.T, d.Nd = d.N * d.D, d.Kd = d.K * d.D;
  if (a.ok && d.N % d.K) a.fail("query heads are not a multiple of kv heads");
  return d;
}

/** The 4 projections from argv[first...]: Wq, Wk, Wv, Wo, then Aq, Bq, Ak, Bk, Av, Bv, Ao, Bo. */
void attnProjs(Args& a, size_t first, const AttnDims& d, Proj out[4]) {
  const int64_t O[4] = {d.Nd, d.Kd, d.Kd, d.H}, In[4] = {d.H, d.H, d.H, d.Nd}, r[4] = {d.rq, d.rk, d.rv, d.ro};
  for (int j = 0; j < 4; j++) {
    out[j].O = O[j], out[j].In = In[j], out[j].r = r[j];
    out[j].W = a.f32(first + j, O[j] * In[j]);
    out[j].A = r[j] ? a.f32(first + 4 + 2 * j, r[j] * In[j]) : nullptr;
    out[j].B = r[j] ? a.f32(first + 5 + 2 * j, O[j] * r[j]) : nullptr;
  }
}

// attnForward(x [M,H], norm [H], Wq, Wk, Wv, Wo, Aq, Bq, Ak, Bk, Av, Bv, Ao, Bo, cos [B,T,D], sin, mask [B,T],
//             y [M,H], stash, B, T, N, K, D, H, rq, rk, rv, ro, loraScale, eps)
napi_value AttnForward(napi_env env, napi_callback_info info) {
  Args a(env, info, 31, "attnForward");
  const AttnDims d = attnDims(a, 19);
  const float loraScale = (float)a.num(29), eps = (float)a.num(30);
  const int64_t M = d.M, H = d.H;
  const float *x = a.f32(0, M * H), *nw = a.f32(1, H);
  Proj p[4];
  attnProjs(a, 2, d, p);
  const float *cs = a.f32(14, M * d.D), *sn = a.f32(15, M * d.D), *mask = a.f32(16, M);
  float *y = a.f32(17, M * H), *s = a.f32(18, d.stash());
  if (!a.ok) return nullptr;
  float *sx = s, *rinv = s + M * H, *q = rinv + M, *k = q + M * d.Nd, *v = k + M * d.Kd, *att = v + M * d.Kd, *tail = att + M * d.Nd;
  memcpy(tail, cs, sizeof(float) * M * d.D);
  memcpy(tail + M * d.D, sn, sizeof(float) * M * d.D);
  memcpy(tail + 2 * M * d.D, mask, sizeof(float) * M);
  float* h = buffer(0, M * H);
  forRows(*pool, M, H, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * H;
      float* hr = h + r * H;
      const float ri = 1.0f / sqrtf(sumSq(xr, H) / (float)H + eps);
      rinv[r] = ri;
      for (int64_t i = 0; i < H; i++) hr[i] = xr[i] * ri * nw[i];
      memcpy(sx + r * H, xr, sizeof(float) * H);
    }
  });
  projForward(p[0], M, h, loraScale, q);
  projForward(p[1], M, h, loraScale, k);
  projForward(p[2], M, h, loraScale, v);
  const int64_t oq = M * H + M, ok_ = oq + M * d.Nd, ov = ok_ + M * d.Kd, oa = ov + M * d.Kd;
  if (!callExport(a, "attentionForward", {a.sub(18, oq, M * d.Nd), a.sub(18, ok_, M * d.Kd), a.sub(18, ov, M * d.Kd), a.argv[14], a.argv[15],
                                          a.argv[16], a.sub(18, oa, M * d.Nd), num(env, (double)d.B), num(env, (double)d.T), num(env, (double)d.N),
                                          num(env, (double)d.K), num(env, (double)d.D), num(env, 1.0 / sqrt((double)d.D))}))
    return nullptr;
  projForward(p[3], M, att, loraScale, y);
  forRows(*pool, M, H, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0 * H; i < r1 * H; i++) y[i] = x[i] + y[i];
  });
  return nullptr;
}

// attnBackward(dy [M,H], stash, norm, Wq, Wk, Wv, Wo, Aq, Bq, Ak, Bk, Av, Bv, Ao, Bo, cos, sin, mask,
//              dx [M,H], dAq, dBq, dAk, dBk, dAv, dBv, dAo, dBo, B, T, N, K, D, H, rq, rk, rv, ro, loraScale)
//   (cos, sin, mask: the stash's copies, as views):
//   dAtt = o's dx (and dAo, dBo); dq, dk, dv from attention.cc's core; dh = the sum of q, k, v's dx (and their dA, dB);
//   dx = dy + rmsnorm's dx of dh.
napi_value AttnBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, 38, "attnBackward");
  const AttnDims d = attnDims(a, 27);
  const float loraScale = (float)a.num(37);
  const int64_t M = d.M, H = d.H;
  const float *dy = a.f32(0, M * H), *s = a.f32(1, d.stash()), *nw = a.f32(2, H);
  Proj p[4];
  attnProjs(a, 3, d, p);
  a.f32(15, M * d.D), a.f32(16, M * d.D), a.f32(17, M);  // cos, sin, mask: checked here, read by the core
  float* dx = a.f32(18, M * H);
  float *dA[4], *dB[4];
  for (int j = 0; j < 4; j++) {
    dA[j] = p[j].r ? a.f32(19 + 2 * j, p[j].r * p[j].In) : nullptr;
    dB[j] = p[j].r ? a.f32(20 + 2 * j, p[j].O * p[j].r) : nullptr;
  }
  if (!a.ok) return nullptr;
  const float *sx = s, *rinv = s + M * H, *att = rinv + M + M * d.Nd + 2 * M * d.Kd;
  const int64_t oq = M * H + M, ok_ = oq + M * d.Nd, ov = ok_ + M * d.Kd;
  float *h = buffer(0, M * H), *dh = buffer(1, M * H);
  forRows(*pool, M, H, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++)
      for (int64_t i = 0; i < H; i++) h[r * H + i] = sx[r * H + i] * rinv[r] * nw[i];
  });
  float *dAtt, *dq, *dk, *dv;
  napi_value jdAtt = scratch(a, M * d.Nd, &dAtt), jdq = scratch(a, M * d.Nd, &dq), jdk = scratch(a, M * d.Kd, &dk), jdv = scratch(a, M * d.Kd, &dv);
  if (!a.ok) return nullptr;
  projBackward(p[3], M, att, dy, loraScale, 0.0f, dAtt, dA[3], dB[3]);
  if (!callExport(a, "attentionBackward", {a.sub(1, oq, M * d.Nd), a.sub(1, ok_, M * d.Kd), a.sub(1, ov, M * d.Kd), a.argv[15], a.argv[16],
                                           a.argv[17], jdAtt, jdq, jdk, jdv, num(env, (double)d.B), num(env, (double)d.T), num(env, (double)d.N),
                                           num(env, (double)d.K), num(env, (double)d.D), num(env, 1.0 / sqrt((double)d.D))}))
    return nullptr;
  projBackward(p[0], M, h, dq, loraScale, 0.0f, dh, dA[0], dB[0]);
  projBackward(p[1], M, h, dk, loraScale, 1.0f, dh, dA[1], dB[1]);
  projBackward(p[2], M, h, dv, loraScale, 1.0f, dh, dA[2], dB[2]);
  forRows(*pool, M, H, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float *xr = sx + r * H, *gr = dh + r * H, *yr = dy + r * H;
      float* dr = dx + r * H;
      const float ri = rinv[r];
      const float c = dot3(nw, gr, xr, H) / (float)H * ri * ri * ri;
      for (int64_t i = 0; i < H; i++) dr[i] = yr[i] + (ri * nw[i] * gr[i] - xr[i] * c);
    }
  });
  return nullptr;
}

}  // namespace

/** Adds mlpForward, mlpBackward, attnForward and attnBackward to the addon's exports; tasks run on `fusedPool`. */
void RegisterLayer(napi_env env, napi_value exports, Pool& fusedPool) {
  pool = &fusedPool;
  const struct { const char* name; napi_callback fn; } fns[] = {
      {"mlpForward", MlpForward}, {"mlpBackward", MlpBackward}, {"attnForward", AttnForward}, {"attnBackward", AttnBackward},
  };
  // This env's exports, for the attention half's calls into attention.cc; freed with the env.
  napi_ref* ref = new napi_ref(nullptr);
  napi_create_reference(env, exports, 1, ref);
  napi_add_env_cleanup_hook(env, [](void* r) { delete static_cast<napi_ref*>(r); }, ref);
  for (const auto& f : fns) {
    napi_value v;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.fn, ref, &v);
    napi_set_named_property(env, exports, f.name, v);
  }
}
