// A float32 GEMM whose result does not depend on the thread count: C = op(A) op(B) (+ beta C), row-major, one matrix
// or a strided batch. OpenBLAS runs single-threaded (its own threading gives other bits at 2 threads on some shapes:
// its small-matrix path is taken only by one thread), and the product is cut into blocks of output rows or columns
// whose bounds depend only on the shape. Each block is one single-threaded cblas_sgemm, spread over the pool (pool.h),
// so 1 and N threads compute every block with the same call and agree bit for bit.
//
// Block sizes: a block has at least WORK multiply-adds and MIN_SIZE rows (or columns), and a product at most MAX_BLOCKS
// blocks. Each block repacks the other operand (a split of M repacks B, a split of N repacks A): about M*N*K / size
// float copies against 2*M*N*K flops, a few percent at one thread. Leaves out: splits of K (they would change the order
// of the sums).
#pragma once
#include <stdint.h>
#include <string.h>

#include <algorithm>

#include "pool.h"

#ifdef __APPLE__
#define ACCELERATE_NEW_LAPACK
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
#endif

namespace gemm_split {

constexpr int64_t WORK = int64_t(1) << 20;  // multiply-adds per block, at least (about 10 us of one core)
constexpr int64_t MIN_SIZE = 64;               // rows (or columns) per block, at least
constexpr int64_t MAX_BLOCKS = 8;
constexpr int64_t ALIGN = 16;                  // block bounds are multiples of 16 (one AVX-512 register of floats)

/** How one product of the batch is cut: `blocks` pieces of `size` rows (splitM) or columns of C. */
struct Cut {
  bool splitM;
  int64_t blocks, size;
};

inline Cut cut(int64_t M, int64_t N, int64_t K) {
  const bool splitM = M >= N;
  const int64_t dim = splitM ? M : N;
  const int64_t want = std::max<int64_t>(1, std::min({MAX_BLOCKS, M * N * K / WORK, dim / MIN_SIZE}));
  const int64_t size = ((dim + want - 1) / want + ALIGN - 1) / ALIGN * ALIGN;
  return {splitM, (dim + size - 1) / size, size};
}

/** One single-threaded product (the caller has set OpenBLAS to one thread). lda/ldb/ldc are the full matrices'. */
inline void one(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, const float* b, int64_t ldb,
                float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, 1.0f,
              a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

}  // namespace gemm_split

/**
 * For i < batch: C_i = op(A_i) op(B_i) + beta C_i, where A_i = a + i*strideA ([M, K], stored [K, M] when ta),
 * B_i = b + i*strideB ([K, N], stored [N, K] when tb) and C_i = c + i*M*N ([M, N]). Dense operands, offsets in floats.
 */
inline void gemmDeterministic(Pool& pool, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* a, int64_t strideA,
                              const float* b, int64_t strideB, float beta, float* c, int64_t batch) {
  using namespace gemm_split;
  if (M == 0 || N == 0 || batch == 0) return;
  if (K == 0) {
    if (beta == 0.0f) memset(c, 0, sizeof(float) * batch * M * N);
    else if (beta != 1.0f) for (int64_t i = 0; i < batch * M * N; i++) c[i] *= beta;
    return;
  }
  const int64_t lda = ta ? M : K, ldb = tb ? K : N;
  const Cut k = cut(M, N, K);
  pool.run(batch * k.blocks, [&](int64_t t) {
    const int64_t item = t / k.blocks, from = (t % k.blocks) * k.size;
    const float* ai = a + item * strideA;
    const float* bi = b + item * strideB;
    float* ci = c + item * M * N;
    if (k.splitM) {
      const int64_t rows = std::min(k.size, M - from);
      one(ta, tb, rows, N, K, ta ? ai + from : ai + from * K, lda, bi, ldb, beta, ci + from * N, N);
    } else {
      const int64_t cols = std::min(k.size, N - from);
      one(ta, tb, M, cols, K, ai, lda, tb ? bi + from * K : bi + from, ldb, beta, ci + from, N);
    }
  });
}
