// kernels/cuda/sgemm.cu: kiln's own SGEMM, row-major C = alpha op(A) op(B)
// + beta C with the dense epilogue (bias[n] + activation) fused in.
//
// FP32 kernel: a BM x BN tile a block, BK deep, each thread a TM x TN
// register block; A and B tiles go through shared memory (A stored k-major
// so both operands are read as float4 along m and n), loaded from global
// memory as float4 when the leading dimensions and pointers allow,
// double-buffered (the next tile is fetched into registers while the
// current one is multiplied; one barrier a tile). The thread's TM rows are
// two groups of TM/2 (likewise TN), 64 apart, so a warp's shared-memory
// reads hit distinct banks. Three tile shapes: the launcher picks the
// largest that still gives every SM work.
//
// TF32 kernel (--math tf32): WMMA m16n16k8 TF32 fragments, 64 x 64 tiles,
// four warps of 32 x 32, FP32 accumulation, the same epilogue.
//
// Every output element is written by exactly one thread, whose dot product
// runs over k in a fixed order: results repeat bit for bit.
#include <mma.h>

#include "cuda-backend.h"

template <bool TA>
__device__ __forceinline__ float sgemm_load_a(const float *A, int lda, int M, int K, int m, int k)
{
    if (m >= M || k >= K) return 0.0f;
    return TA ? A[(long long)k * lda + m] : A[(long long)m * lda + k];
}

template <bool TB>
__device__ __forceinline__ float sgemm_load_b(const float *B, int ldb, int N, int K, int k, int n)
{
    if (n >= N || k >= K) return 0.0f;
    return TB ? B[(long long)n * ldb + k] : B[(long long)k * ldb + n];
}

__device__ __forceinline__ float sgemm_epilogue(float acc, float alpha, float beta,
                                                const float *C, long long ci, const float *bias,
                                                int n, int act, float param)
{
    float v = alpha * acc;
    // beta == 0: C is output only and a NaN in it must not leak.
    if (beta != 0.0f) v += beta * C[ci];
    if (bias) v += bias[n];
    return act == KILN_ACT_NONE ? v : kiln_act_apply((enum kiln_act)act, param, v);
}

template <int BM, int BN, int BK, int TM, int TN, bool TA, bool TB>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
    cuda_sgemm_kernel(int M, int N, int K, float alpha, const float *__restrict__ A, int lda,
                      const float *__restrict__ B, int ldb, float beta, float *__restrict__ C,
                      int ldc, const float *__restrict__ bias, int act, float param, bool vec_ab,
                      bool vec_c)
{
    constexpr int T = (BM / TM) * (BN / TN);
    constexpr int A4 = BM * BK / 4, B4 = BN * BK / 4; // float4 slots a tile
    constexpr int LA = (A4 + T - 1) / T, LB = (B4 + T - 1) / T;
    static_assert(TM % 4 == 0 && TN % 4 == 0, "register blocks are float4 groups");
    constexpr int GM = TM / 4, GN = TN / 4;             // float4 groups a thread
    constexpr int SM_ = BM / GM, SN_ = BN / GN;         // distance between groups
    __shared__ __align__(16) float As[2][BK][BM + 4];
    __shared__ __align__(16) float Bs[2][BK][BN + 4];

    const int tid = threadIdx.x;
    const int tx = tid % (BN / TN), ty = tid / (BN / TN);
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    float4 ra[LA], rb[LB];

    // Global -> registers for the tile starting at k0.
    auto fetch = [&](int k0) {
#pragma unroll
        for (int l = 0; l < LA; l++) {
            int i = tid + l * T;
            if (i >= A4) break;
            int mm, kk;
            if (TA) { kk = i / (BM / 4); mm = (i % (BM / 4)) * 4; }
            else { mm = i / (BK / 4); kk = (i % (BK / 4)) * 4; }
            int gm = m0 + mm, gk = k0 + kk;
            bool full = TA ? (gk < K && gm + 3 < M) : (gm < M && gk + 3 < K);
            if (vec_ab && full) {
                ra[l] = *reinterpret_cast<const float4 *>(
                    TA ? A + (long long)gk * lda + gm : A + (long long)gm * lda + gk);
            } else if (TA) {
                ra[l] = make_float4(sgemm_load_a<TA>(A, lda, M, K, gm, gk),
                                    sgemm_load_a<TA>(A, lda, M, K, gm + 1, gk),
                                    sgemm_load_a<TA>(A, lda, M, K, gm + 2, gk),
                                    sgemm_load_a<TA>(A, lda, M, K, gm + 3, gk));
            } else {
                ra[l] = make_float4(sgemm_load_a<TA>(A, lda, M, K, gm, gk),
                                    sgemm_load_a<TA>(A, lda, M, K, gm, gk + 1),
                                    sgemm_load_a<TA>(A, lda, M, K, gm, gk + 2),
                                    sgemm_load_a<TA>(A, lda, M, K, gm, gk + 3));
            }
        }
#pragma unroll
        for (int l = 0; l < LB; l++) {
            int i = tid + l * T;
            if (i >= B4) break;
            int nn, kk;
            if (TB) { nn = i / (BK / 4); kk = (i % (BK / 4)) * 4; }
            else { kk = i / (BN / 4); nn = (i % (BN / 4)) * 4; }
            int gn = n0 + nn, gk = k0 + kk;
            bool full = TB ? (gn < N && gk + 3 < K) : (gk < K && gn + 3 < N);
            if (vec_ab && full) {
                rb[l] = *reinterpret_cast<const float4 *>(
                    TB ? B + (long long)gn * ldb + gk : B + (long long)gk * ldb + gn);
            } else if (TB) {
                rb[l] = make_float4(sgemm_load_b<TB>(B, ldb, N, K, gk, gn),
                                    sgemm_load_b<TB>(B, ldb, N, K, gk + 1, gn),
                                    sgemm_load_b<TB>(B, ldb, N, K, gk + 2, gn),
                                    sgemm_load_b<TB>(B, ldb, N, K, gk + 3, gn));
            } else {
                rb[l] = make_float4(sgemm_load_b<TB>(B, ldb, N, K, gk, gn),
                                    sgemm_load_b<TB>(B, ldb, N, K, gk, gn + 1),
                                    sgemm_load_b<TB>(B, ldb, N, K, gk, gn + 2),
                                    sgemm_load_b<TB>(B, ldb, N, K, gk, gn + 3));
            }
        }
    };
    // Registers -> shared stage s (k-major for both operands).
    auto store = [&](int s) {
#pragma unroll
        for (int l = 0; l < LA; l++) {
            int i = tid + l * T;
            if (i >= A4) break;
            if (TA) {
                int kk = i / (BM / 4), mm = (i % (BM / 4)) * 4;
                *reinterpret_cast<float4 *>(&As[s][kk][mm]) = ra[l];
            } else {
                int mm = i / (BK / 4), kk = (i % (BK / 4)) * 4;
                As[s][kk][mm] = ra[l].x;
                As[s][kk + 1][mm] = ra[l].y;
                As[s][kk + 2][mm] = ra[l].z;
                As[s][kk + 3][mm] = ra[l].w;
            }
        }
#pragma unroll
        for (int l = 0; l < LB; l++) {
            int i = tid + l * T;
            if (i >= B4) break;
            if (TB) {
                int nn = i / (BK / 4), kk = (i % (BK / 4)) * 4;
                Bs[s][kk][nn] = rb[l].x;
                Bs[s][kk + 1][nn] = rb[l].y;
                Bs[s][kk + 2][nn] = rb[l].z;
                Bs[s][kk + 3][nn] = rb[l].w;
            } else {
                int kk = i / (BN / 4), nn = (i % (BN / 4)) * 4;
                *reinterpret_cast<float4 *>(&Bs[s][kk][nn]) = rb[l];
            }
        }
    };

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < TN; j++) acc[i][j] = 0.0f;

    const int tiles = (K + BK - 1) / BK;
    if (tiles > 0) {
        fetch(0);
        store(0);
    }
    __syncthreads();
    for (int t = 0; t < tiles; t++) {
        const int s = t & 1;
        if (t + 1 < tiles) fetch((t + 1) * BK);
#pragma unroll
        for (int kk = 0; kk < BK; kk++) {
            float a[TM], b[TN];
#pragma unroll
            for (int g = 0; g < GM; g++) {
                float4 v = *reinterpret_cast<const float4 *>(&As[s][kk][g * SM_ + ty * 4]);
                a[g * 4] = v.x; a[g * 4 + 1] = v.y; a[g * 4 + 2] = v.z; a[g * 4 + 3] = v.w;
            }
#pragma unroll
            for (int g = 0; g < GN; g++) {
                float4 v = *reinterpret_cast<const float4 *>(&Bs[s][kk][g * SN_ + tx * 4]);
                b[g * 4] = v.x; b[g * 4 + 1] = v.y; b[g * 4 + 2] = v.z; b[g * 4 + 3] = v.w;
            }
#pragma unroll
            for (int i = 0; i < TM; i++)
#pragma unroll
                for (int j = 0; j < TN; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        if (t + 1 < tiles) store(s ^ 1);
        __syncthreads();
    }

    // Epilogue: alpha, beta C, bias, activation; float4 stores when aligned.
#pragma unroll
    for (int i = 0; i < TM; i++) {
        int r = m0 + (i / 4) * SM_ + ty * 4 + (i % 4);
        if (r >= M) continue;
#pragma unroll
        for (int g = 0; g < GN; g++) {
            int cb = n0 + g * SN_ + tx * 4;
            long long ci = (long long)r * ldc + cb;
            float o[4];
#pragma unroll
            for (int j = 0; j < 4; j++)
                o[j] = cb + j < N ? sgemm_epilogue(acc[i][g * 4 + j], alpha, beta, C, ci + j, bias,
                                                   cb + j, act, param)
                                  : 0.0f;
            if (vec_c && cb + 3 < N) {
                *reinterpret_cast<float4 *>(C + ci) = make_float4(o[0], o[1], o[2], o[3]);
            } else {
#pragma unroll
                for (int j = 0; j < 4; j++)
                    if (cb + j < N) C[ci + j] = o[j];
            }
        }
    }
}

// --- TF32 tensor cores (WMMA) ---------------------------------------------------

namespace wmma = nvcuda::wmma;

template <bool TA, bool TB>
__global__ void __launch_bounds__(128)
    cuda_sgemm_tf32_kernel(int M, int N, int K, float alpha, const float *__restrict__ A, int lda,
                           const float *__restrict__ B, int ldb, float beta, float *__restrict__ C,
                           int ldc, const float *__restrict__ bias, int act, float param)
{
#if __CUDA_ARCH__ >= 800
    constexpr int BM = 64, BN = 64, BK = 16, LDA_S = BK + 4, LDB_S = BN + 4, LDC_S = BN + 4;
    __shared__ __align__(32) float As[BM * LDA_S];   // [m][k]
    __shared__ __align__(32) float Bs[BK * LDB_S];   // [k][n]
    __shared__ __align__(32) float Cs[BM * LDC_S];
    const int tid = threadIdx.x, warp = tid / 32;
    const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[2][2];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.0f);
    for (int k0 = 0; k0 < K; k0 += BK) {
        for (int i = tid; i < BM * BK; i += 128) {
            int mm = i / BK, kk = i % BK;
            As[mm * LDA_S + kk] = sgemm_load_a<TA>(A, lda, M, K, m0 + mm, k0 + kk);
        }
        for (int i = tid; i < BK * BN; i += 128) {
            int kk = i / BN, nn = i % BN;
            Bs[kk * LDB_S + nn] = sgemm_load_b<TB>(B, ldb, N, K, k0 + kk, n0 + nn);
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BK; kk += 8) {
            wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa[2];
            wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb[2];
#pragma unroll
            for (int i = 0; i < 2; i++) {
                wmma::load_matrix_sync(fa[i], As + (wm + i * 16) * LDA_S + kk, LDA_S);
#pragma unroll
                for (int e = 0; e < fa[i].num_elements; e++) fa[i].x[e] = wmma::__float_to_tf32(fa[i].x[e]);
            }
#pragma unroll
            for (int j = 0; j < 2; j++) {
                wmma::load_matrix_sync(fb[j], Bs + kk * LDB_S + wn + j * 16, LDB_S);
#pragma unroll
                for (int e = 0; e < fb[j].num_elements; e++) fb[j].x[e] = wmma::__float_to_tf32(fb[j].x[e]);
            }
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++)
            wmma::store_matrix_sync(Cs + (wm + i * 16) * LDC_S + wn + j * 16, acc[i][j], LDC_S,
                                    wmma::mem_row_major);
    __syncthreads();
    for (int i = tid; i < BM * BN; i += 128) {
        int mm = i / BN, nn = i % BN, r = m0 + mm, cc = n0 + nn;
        if (r < M && cc < N) {
            long long ci = (long long)r * ldc + cc;
            C[ci] = sgemm_epilogue(Cs[mm * LDC_S + nn], alpha, beta, C, ci, bias, cc, act, param);
        }
    }
#endif
}

// --- launchers ---------------------------------------------------------------------

template <int BM, int BN, int BK, int TM, int TN>
static void sgemm_launch(cudaStream_t s, bool ta, bool tb, int m, int n, int k, float alpha,
                         const float *a, int lda, const float *b, int ldb, float beta, float *c,
                         int ldc, const float *bias, int act, float param, bool vec_ab, bool vec_c)
{
    constexpr int T = (BM / TM) * (BN / TN);
    dim3 grid((unsigned)((n + BN - 1) / BN), (unsigned)((m + BM - 1) / BM));
#define SGEMM_CASE(TA_, TB_)                                                                \
    cuda_sgemm_kernel<BM, BN, BK, TM, TN, TA_, TB_><<<grid, T, 0, s>>>(                    \
        m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias, act, param, vec_ab, vec_c)
    if (!ta && !tb) SGEMM_CASE(false, false);
    else if (!ta && tb) SGEMM_CASE(false, true);
    else if (ta && !tb) SGEMM_CASE(true, false);
    else SGEMM_CASE(true, true);
#undef SGEMM_CASE
}

enum kiln_status cuda_gemm_kiln(struct cuda_ctx *c, bool ta, bool tb, int64_t m, int64_t n,
                                int64_t k, float alpha, const float *a, int64_t lda,
                                const float *b, int64_t ldb, float beta, float *cc, int64_t ldc,
                                const float *bias, enum kiln_act act, float param)
{
    if (m == 0 || n == 0) return KILN_OK;
    int M = (int)m, N = (int)n, K = (int)k;
    // Row tiles go in gridDim.y, which stops at 65535: refuse rather than
    // launch a grid CUDA rejects (8.4M rows with 128-row tiles).
    long long tile_m = c->math == KILN_MATH_TF32 ? 64 : 128;
    if ((m + tile_m - 1) / tile_m > 65535)
        return kiln_errorf(KILN_ERR_UNSUPPORTED,
                           "gemm (kiln): %lld rows is over the kernel's grid limit (%lld)",
                           (long long)m, 65535LL * tile_m);
    if (c->math == KILN_MATH_TF32) {
        dim3 grid((unsigned)((n + 63) / 64), (unsigned)((m + 63) / 64));
#define TF32_CASE(TA_, TB_)                                                                 \
    cuda_sgemm_tf32_kernel<TA_, TB_><<<grid, 128, 0, c->stream>>>(                          \
        M, N, K, alpha, a, (int)lda, b, (int)ldb, beta, cc, (int)ldc, bias, (int)act, param)
        if (!ta && !tb) TF32_CASE(false, false);
        else if (!ta && tb) TF32_CASE(false, true);
        else if (ta && !tb) TF32_CASE(true, false);
        else TF32_CASE(true, true);
#undef TF32_CASE
        return cuda_launched("gemm (kiln, tf32)");
    }
    bool vec_ab = lda % 4 == 0 && ldb % 4 == 0 && cuda_aligned16(a) && cuda_aligned16(b);
    bool vec_c = ldc % 4 == 0 && cuda_aligned16(cc);
    // The largest tile that still puts a block on every SM; small GEMMs (a
    // batch of 128 through a 256-wide layer) are latency-bound and want
    // many small tiles more than few big ones.
    long long tiles128 = ((m + 127) / 128) * ((n + 127) / 128);
    long long tiles64 = ((m + 63) / 64) * ((n + 63) / 64);
    if (tiles128 >= c->sm_count)
        sgemm_launch<128, 128, 8, 8, 8>(c->stream, ta, tb, M, N, K, alpha, a, (int)lda, b,
                                        (int)ldb, beta, cc, (int)ldc, bias, (int)act, param,
                                        vec_ab, vec_c);
    else if (tiles64 >= c->sm_count)
        sgemm_launch<64, 64, 16, 4, 4>(c->stream, ta, tb, M, N, K, alpha, a, (int)lda, b,
                                       (int)ldb, beta, cc, (int)ldc, bias, (int)act, param, vec_ab,
                                       vec_c);
    else
        sgemm_launch<32, 32, 16, 4, 4>(c->stream, ta, tb, M, N, K, alpha, a, (int)lda, b,
                                       (int)ldb, beta, cc, (int)ldc, bias, (int)act, param, vec_ab,
                                       vec_c);
    return cuda_launched("gemm (kiln)");
}
