// The row math that the addon's kernels share (fused.cc, attention.cc, layer.cc): lane-array sums (vectorizable
// without reassociating: 16 lanes, then the lanes in order, then the tail), Cephes expf, SiLU*up and its gradient, and
// the cut of rows into pool tasks that depends only on the shape. One definition, so a fused layer and the op it
// replaces round alike. Each file gets its own copy (static); the hot loops get AVX-512 and AVX2 clones picked at load
// time (GCC/Clang ifunc), so one binary runs everywhere.
#pragma once
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "pool.h"

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__)
#define HOT __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define HOT
#endif

constexpr int L = 16;

/** Rows per task: about 16K elements, never split a row; a function of the shape only. */
static inline int64_t rowsPerTask(int64_t width) { return width >= 16384 ? 1 : 16384 / (width > 0 ? width : 1); }

/** Runs f(row0, row1) over [0, rows) in thread-count-independent blocks. */
template <typename F>
static void forRows(Pool& pool, int64_t rows, int64_t width, F f) {
  const int64_t per = rowsPerTask(width);
  const int64_t tasks = (rows + per - 1) / per;
  pool.run(tasks, [&](int64_t t) {
    const int64_t r0 = t * per, r1 = r0 + per < rows ? r0 + per : rows;
    f(r0, r1);
  });
}

HOT static float sumSq(const float* x, int64_t n) {
  float acc[L] = {0};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int l = 0; l < L; l++) acc[l] += x[i + l] * x[i + l];
  float s = 0;
  for (int l = 0; l < L; l++) s += acc[l];
  for (; i < n; i++) s += x[i] * x[i];
  return s;
}

HOT static float dot3(const float* a, const float* b, const float* c, int64_t n) {
  float acc[L] = {0};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int l = 0; l < L; l++) acc[l] += a[i + l] * b[i + l] * c[i + l];
  float s = 0;
  for (int l = 0; l < L; l++) s += acc[l];
  for (; i < n; i++) s += a[i] * b[i] * c[i];
  return s;
}

HOT static float dot2(const float* a, const float* b, int64_t n) {
  float acc[L] = {0};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int l = 0; l < L; l++) acc[l] += a[i + l] * b[i + l];
  float s = 0;
  for (int l = 0; l < L; l++) s += acc[l];
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

/**
 * exp(x) for float32 as Cephes `expf`: x = n ln2 + r with |r| <= ln2/2, a degree-6 polynomial for e^r, then 2^n through
 * the exponent bits. About 2 ulp; below -87 it returns 0 (no denormals), above 88 it saturates at e^88.
 */
static inline float expFast(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest, |n| < 2^22
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

HOT static float rowMax(const float* x, int64_t n) {
  float m = -INFINITY;
  for (int64_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
  return m;
}

/** out[i] = exp(x[i] - shift), returns the sum (lane order fixed). */
HOT static float expShifted(const float* x, float shift, float* out, int64_t n) {
  float acc[L] = {0};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int l = 0; l < L; l++) {
      const float e = expFast(x[i + l] - shift);
      out[i + l] = e;
      acc[l] += e;
    }
  float s = 0;
  for (int l = 0; l < L; l++) s += acc[l];
  for (; i < n; i++) {
    out[i] = expFast(x[i] - shift);
    s += out[i];
  }
  return s;
}

/** y = silu(g) * u. */
HOT static void swigluRange(const float* g, const float* u, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float sg = 1.0f / (1.0f + expFast(-g[i]));
    y[i] = g[i] * sg * u[i];
  }
}

/** dg, du from dy (dy may be dg itself: each element is read before it is written). */
HOT static void swigluGradRange(const float* g, const float* u, const float* dy, float* dg, float* du, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float sg = 1.0f / (1.0f + expFast(-g[i]));
    const float silu = g[i] * sg;
    const float d = dy[i];
    du[i] = d * silu;
    dg[i] = d * u[i] * (sg * (1.0f + g[i] * (1.0f - sg)));
  }
}
