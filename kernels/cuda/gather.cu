// kernels/cuda/gather.cu: batch assembly from shuffled row indices on the
// device (uint8 -> float with scale, float, int32 labels), and the start of
// a captured training step.
#include "cuda-backend.h"

// One block row per batch row (grid-stride in y), threads along the row.
template <typename T>
__global__ void cuda_gather_kernel(const T *__restrict__ src, long long row_size,
                                   const int64_t *__restrict__ idx, long long rows, float scale,
                                   float *__restrict__ dst)
{
    for (long long r = blockIdx.y; r < rows; r += gridDim.y) {
        const T *in = src + idx[r] * row_size;
        float *o = dst + r * row_size;
        for (long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x; c < row_size;
             c += (long long)gridDim.x * blockDim.x)
            o[c] = (float)in[c] * scale;
    }
}

// 4 uint8 a thread when rows are 4-byte aligned (784-pixel images are).
__global__ void cuda_gather_u8x4_kernel(const uchar4 *__restrict__ src, long long row4,
                                        const int64_t *__restrict__ idx, long long rows,
                                        float scale, float4 *__restrict__ dst)
{
    for (long long r = blockIdx.y; r < rows; r += gridDim.y) {
        const uchar4 *in = src + idx[r] * row4;
        float4 *o = dst + r * row4;
        for (long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x; c < row4;
             c += (long long)gridDim.x * blockDim.x) {
            uchar4 v = in[c];
            o[c] = make_float4((float)v.x * scale, (float)v.y * scale, (float)v.z * scale,
                               (float)v.w * scale);
        }
    }
}

__global__ void cuda_gather_i32_kernel(const int32_t *__restrict__ src, long long row_size,
                                       const int64_t *__restrict__ idx, long long rows,
                                       int32_t *__restrict__ dst)
{
    for (long long r = blockIdx.y; r < rows; r += gridDim.y)
        for (long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x; c < row_size;
             c += (long long)gridDim.x * blockDim.x)
            dst[r * row_size + c] = src[idx[r] * row_size + c];
}

extern "C" enum kiln_status cuda_gather_rows(void *ctx, const void *src, enum kiln_elem elem,
                                             int64_t row_size, const int64_t *idx, int64_t rows,
                                             float scale, float *dst)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    if (rows <= 0 || row_size <= 0) return KILN_OK;
    long long per_row = row_size;
    bool u8x4 = elem == KILN_ELEM_U8 && row_size % 4 == 0 && cuda_aligned16(dst) &&
                ((uintptr_t)src & 3u) == 0;
    if (u8x4) per_row = row_size / 4;
    unsigned gx = (unsigned)((per_row + 255) / 256 < 16 ? (per_row + 255) / 256 : 16);
    dim3 grid(gx, (unsigned)(rows < 65535 ? rows : 65535));
    switch (elem) {
    case KILN_ELEM_U8:
        if (u8x4)
            cuda_gather_u8x4_kernel<<<grid, 256, 0, c->stream>>>(
                static_cast<const uchar4 *>(src), per_row, idx, rows, scale,
                reinterpret_cast<float4 *>(dst));
        else
            cuda_gather_kernel<uint8_t><<<grid, 256, 0, c->stream>>>(
                static_cast<const uint8_t *>(src), row_size, idx, rows, scale, dst);
        break;
    case KILN_ELEM_F32:
        cuda_gather_kernel<float><<<grid, 256, 0, c->stream>>>(static_cast<const float *>(src),
                                                               row_size, idx, rows, scale, dst);
        break;
    case KILN_ELEM_I32:
        cuda_gather_i32_kernel<<<grid, 256, 0, c->stream>>>(static_cast<const int32_t *>(src),
                                                            row_size, idx, rows,
                                                            reinterpret_cast<int32_t *>(dst));
        break;
    default:
        return kiln_errorf(KILN_ERR_INTERNAL, "gather_rows: element type %d not supported", elem);
    }
    return cuda_launched("gather_rows");
}

// One block: every thread reads the cursor before thread 0 could change
// anything (nothing here writes it; step_check advances it).
__global__ void cuda_step_begin_kernel(struct kiln_step_ctl *ctl, const struct kiln_step_vars *vars,
                                       const int64_t *order, long long batch, long long rows,
                                       int64_t *idx)
{
    long long cur = ctl->cursor;
    if (threadIdx.x == 0) ctl->now = vars[cur];
    for (long long r = threadIdx.x; r < rows; r += blockDim.x) idx[r] = order[cur * batch + r];
}

extern "C" enum kiln_status cuda_step_begin(void *ctx, struct kiln_step_ctl *ctl,
                                            const struct kiln_step_vars *vars,
                                            const int64_t *order, int64_t batch, int64_t rows,
                                            int64_t *idx)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    cuda_step_begin_kernel<<<1, 1024, 0, c->stream>>>(ctl, vars, order, batch, rows, idx);
    return cuda_launched("step_begin");
}
