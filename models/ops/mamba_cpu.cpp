// Fused CPU kernels for Mamba: the selective scan (S6) and the causal depthwise conv, forward
// and backward; loaded by mamba_cpu.py via ctypes.
//
// Semantics of mamba_ssm's selective_scan_fn (see selective_scan.py):
//   dt = softplus(delta + bias); h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t; y_t = <C_t, h_t> + D u_t;
//   out = y * silu(z).  u, delta, z: (batch, dim, L); B, C: (batch, nstate, L), any strides.
// Layout of the work: one item = one batch element b (backward) or one (b, block of 16 channels)
// (forward). SIMD runs across 16 channels, so the 16 x nstate state block of an item lives in
// registers and every reduction over the state is lane-wise. The sums over channels (dB, dC) are
// reduced across lanes once per (block, t) by a transpose-add tree. The backward recomputes the
// forward of its block into per-thread L x nstate buffers (states and decays, in L2), then runs
// the reverse scan. A thread owns whole batch elements in the backward, so dB and dC need no
// atomics; dA, dD and dbias are summed per thread and added up at the end.
// Plain C++17 with GCC/Clang vector extensions (no torch headers): -march=native picks the
// widest registers the CPU has. Threads: OpenMP where the compiler has it (sharing torch's
// runtime), else std::thread.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <exception>
#include <thread>
#include <vector>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {

constexpr int W = 16;                                      // channels per block = SIMD lanes
constexpr int MAX_RANK = 64;                               // of the low-rank delta
constexpr int MAX_WIDTH = 16;                              // of the conv
typedef float vf __attribute__((vector_size(W * 4)));
typedef uint32_t vu __attribute__((vector_size(W * 4)));

#if defined(__clang__) || __GNUC__ >= 12
#define SHUF(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define SHUF(a, b, ...) __builtin_shuffle(a, b, vu{__VA_ARGS__})
#endif

inline vf splat(float x) { return vf{} + x; }

// 2^x: x = k + f with k = round(x), f in [-0.5, 0.5]; 2^f by a degree-5 polynomial (a
// least-squares fit of 2^f on [-0.5, 0.5] in relative error: 2.4e-7 in float32), times 2^k.
inline vf exp2_poly(vf f) {
  vf p = splat(0.0013276468962430954f);
  p = p * f + 0.009675540961325169f;
  p = p * f + 0.05550713464617729f;
  p = p * f + 0.24022120237350464f;
  p = p * f + 0.6931469440460205f;
  return p * f + 1.0000001192092896f;
}

#if defined(__AVX512F__)
// AVX-512 rounds and scales in one instruction each, and vscalefps gets under- and overflow
// right (0 and inf), so no clamps are needed.
inline vf exp2v(vf x) {
  const __m512 k = _mm512_roundscale_ps((__m512)x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return (vf)_mm512_scalef_ps((__m512)exp2_poly(x - (vf)k), k);
}
inline vf vmax(vf a, vf b) { return (vf)_mm512_max_ps((__m512)a, (__m512)b); }
#else
// Portable: adding 1.5 * 2^23 rounds to an integer (so this file must not be built with
// -ffast-math, whose reassociation would fold it away) and leaves k in the low bits, which are
// shifted into the exponent. x is clamped to [-125, 125] to keep the result a normal float.
inline vf vmax(vf a, vf b) { return a > b ? a : b; }
inline vf exp2v(vf x) {
  x = vmax(x, splat(-125.f));
  x = x < 125.f ? x : splat(125.f);
  const vf magic = splat(12582912.f);
  const vf s = x + magic;
  return (vf)((vu)exp2_poly(x - (s - magic)) + ((vu)s << 23));
}
#endif

constexpr float LOG2E = 1.4426950408889634f;
inline vf expv(vf x) { return exp2v(x * LOG2E); }
inline vf absv(vf x) { return (vf)((vu)x & 0x7fffffffu); }

// log(1 + e) for e in [0, 1]: 2 atanh(s), s = e / (2 + e) <= 1/3, by its series to s^15.
inline vf log1p01(vf e) {
  const vf s = e / (2.f + e), s2 = s * s;
  vf p = splat(1.f / 15);
  p = p * s2 + 1.f / 13;
  p = p * s2 + 1.f / 11;
  p = p * s2 + 1.f / 9;
  p = p * s2 + 1.f / 7;
  p = p * s2 + 1.f / 5;
  p = p * s2 + 1.f / 3;
  p = p * s2 + 1.f;
  return 2.f * s * p;
}

// softplus(x) = log(1 + e^x), stable for any x; its derivative sigmoid(x) into *dsp if asked.
inline vf softplus(vf x, vf* dsp) {
  const vf e = expv(-absv(x));
  if (dsp) {
    const vf r = 1.f / (1.f + e);
    *dsp = x >= 0.f ? r : e * r;
  }
  return vmax(x, splat(0.f)) + log1p01(e);
}

inline vf sigmoid(vf x) {
  const vf e = expv(-absv(x));
  const vf r = 1.f / (1.f + e);
  return x >= 0.f ? r : e * r;
}

// Sum of each of 16 vectors, returned as one vector whose lanes hold the 16 sums in the order
// reduction_order() reports (a transpose-add tree: 15 adds and 30 two-source shuffles).
inline vf reduce16(const vf* p) {
  vf r1[8], r2[4], r3[2];
  for (int i = 0; i < 8; ++i) {
    const vf a = p[2 * i], b = p[2 * i + 1];
    r1[i] = SHUF(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
            SHUF(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  }
  for (int i = 0; i < 4; ++i) {
    const vf a = r1[2 * i], b = r1[2 * i + 1];
    r2[i] = SHUF(a, b, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27) +
            SHUF(a, b, 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
  }
  for (int i = 0; i < 2; ++i) {
    const vf a = r2[2 * i], b = r2[2 * i + 1];
    r3[i] = SHUF(a, b, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29) +
            SHUF(a, b, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
  }
  const vf a = r3[0], b = r3[1];
  return SHUF(a, b, 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30) +
         SHUF(a, b, 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
}

// order[j] = which input vector's sum lane j of reduce16 holds.
void reduction_order(int* order) {
  vf p[W];
  for (int n = 0; n < W; ++n) p[n] = splat(float(n));
  const vf r = reduce16(p);
  for (int j = 0; j < W; ++j) order[j] = int(r[j] / W + 0.5f);
}

// ---- tensors: float32 or bfloat16 (raw uint16), any strides ---------------------------------

struct Ten {                 // a (batch, X, L) tensor: data pointer and element strides
  void* p;
  int64_t sb, sx, st;
};

inline float ld_(const float* p) { return *p; }
inline float ld_(const uint16_t* p) {
  const uint32_t bits = uint32_t(*p) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline void st(float* p, float v) { *p = v; }
inline void st(uint16_t* p, float v) {       // round to nearest even; NaN stays NaN
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  *p = (bits & 0x7fffffffu) > 0x7f800000u ? uint16_t(0x7fc0) : uint16_t((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

// In-place transpose of a 16 x 16 block held as 16 vectors: four rounds of swapping the
// off-diagonal s x s blocks of each 2s x 2s block (s = 8, 4, 2, 1).
__attribute__((always_inline)) inline void transpose16(vf* r) {
  for (int i = 0; i < 16; ++i)
    if (!(i & 8)) {
      const vf a = r[i], b = r[i + 8];
      r[i] = SHUF(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
      r[i + 8] = SHUF(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    }
  for (int i = 0; i < 16; ++i)
    if (!(i & 4)) {
      const vf a = r[i], b = r[i + 4];
      r[i] = SHUF(a, b, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
      r[i + 4] = SHUF(a, b, 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
    }
  for (int i = 0; i < 16; ++i)
    if (!(i & 2)) {
      const vf a = r[i], b = r[i + 2];
      r[i] = SHUF(a, b, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
      r[i + 2] = SHUF(a, b, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
    }
  for (int i = 0; i < 16; i += 2) {
    const vf a = r[i], b = r[i + 1];
    r[i] = SHUF(a, b, 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
    r[i + 1] = SHUF(a, b, 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
  }
}

// Local layout of a block: dst[t * ld + j] for the W rows c0 .. c0+nc-1 of x[b] (zeros for
// j >= nc), t in the scan's order (reversed if rev). The scan wants the W rows side by side.
// A Linear layer's output has them so (sx == 1: one contiguous row per step). Time-contiguous
// rows (st == 1) are first copied one after the other into rows (W x Lpad, Lpad = L rounded up
// to 16, zero padded), then turned 16 x 16 in registers; copying whole rows first keeps vector
// loads from reading data that scalar stores have just written (a store-forwarding stall).
inline int padded(int L) { return (L + W - 1) / W * W; }

// 16 contiguous elements to or from floats (vector loads and stores, no aliasing to fear)
inline void load16(const float* __restrict src, float* __restrict dst) { std::memcpy(dst, src, W * sizeof(float)); }
inline void load16(const uint16_t* __restrict src, float* __restrict dst) {
  for (int j = 0; j < W; ++j) dst[j] = ld_(src + j);
}
inline void store16(const float* __restrict src, float* __restrict dst) { std::memcpy(dst, src, W * sizeof(float)); }
inline void store16(const float* __restrict src, uint16_t* __restrict dst) {
  for (int j = 0; j < W; ++j) st(dst + j, src[j]);
}

template <class T>
void gather(const Ten& x, int64_t b, int64_t c0, int nc, int L, bool rev, float* dst, float* rows, int ld = W) {
  const T* base = (const T*)x.p + b * x.sb + c0 * x.sx;
  if (x.sx == 1 && nc == W) {
    for (int t = 0; t < L; ++t) load16(base + (rev ? L - 1 - t : t) * x.st, dst + t * ld);
  } else if (x.st == 1) {
    const int Lp = padded(L);
    for (int j = 0; j < W; ++j) {
      float* row = rows + j * Lp;
      const T* src = base + j * x.sx;
      if (j >= nc)
        std::fill(row, row + Lp, 0.f);
      else if (rev)
        for (int t = 0; t < Lp; ++t) row[t] = t < L ? ld_(src + L - 1 - t) : 0.f;
      else
        for (int t = 0; t < Lp; ++t) row[t] = t < L ? ld_(src + t) : 0.f;
    }
    for (int t0 = 0; t0 < L; t0 += W) {
      vf r[W];
      for (int j = 0; j < W; ++j) std::memcpy(&r[j], rows + j * Lp + t0, sizeof(vf));
      transpose16(r);
      for (int k = 0; k < std::min(W, L - t0); ++k) std::memcpy(dst + (t0 + k) * ld, &r[k], sizeof(vf));
    }
  } else {
    for (int t = 0; t < L; ++t)
      for (int j = 0; j < W; ++j)
        dst[t * ld + j] = j < nc ? ld_(base + j * x.sx + (rev ? L - 1 - t : t) * x.st) : 0.f;
  }
}

template <class T>
void scatter(const Ten& x, int64_t b, int64_t c0, int nc, int L, bool rev, const float* src, float* rows) {
  T* base = (T*)x.p + b * x.sb + c0 * x.sx;
  if (x.sx == 1 && nc == W) {
    for (int t = 0; t < L; ++t) store16(src + t * W, base + (rev ? L - 1 - t : t) * x.st);
  } else if (x.st == 1) {
    const int Lp = padded(L);
    for (int t0 = 0; t0 < L; t0 += W) {
      vf r[W] = {};
      for (int k = 0; k < std::min(W, L - t0); ++k) std::memcpy(&r[k], src + (t0 + k) * W, sizeof(vf));
      transpose16(r);
      for (int j = 0; j < W; ++j) std::memcpy(rows + j * Lp + t0, &r[j], sizeof(vf));
    }
    for (int j = 0; j < nc; ++j) {
      const float* row = rows + j * Lp;
      T* d = base + j * x.sx;
      if (rev)
        for (int t = 0; t < L; ++t) st(d + L - 1 - t, row[t]);
      else
        for (int t = 0; t < L; ++t) st(d + t, row[t]);
    }
  } else {
    for (int t = 0; t < L; ++t)
      for (int j = 0; j < nc; ++j) st(base + j * x.sx + (rev ? L - 1 - t : t) * x.st, src[t * W + j]);
  }
}

// Ask for a block's memory ahead of its use: 16 rows read across, or one row per step, stride
// the prefetchers do not follow by themselves.
template <class T>
void prefetch(const Ten& x, int64_t b, int64_t c0, int nc, int L) {
  if (!x.p) return;
  const char* base = (const char*)((const T*)x.p + b * x.sb + c0 * x.sx);
  if (x.st == 1) {
    for (int j = 0; j < nc; ++j)
      for (int64_t off = 0; off < int64_t(L * sizeof(T)) + 63; off += 64)
        __builtin_prefetch(base + j * x.sx * sizeof(T) + off);
  } else {
    for (int t = 0; t < L; ++t) {
      __builtin_prefetch(base + t * x.st * sizeof(T));
      __builtin_prefetch(base + (t * x.st + nc - 1) * sizeof(T));
    }
  }
}

// The next block's memory, asked for one step at a time while the current block computes
// (a few prefetches per step rather than a burst that would overflow the miss buffers). Layouts
// whose block is not one row per step, nor one contiguous piece, are prefetched at once.
template <class T>
struct Ahead {
  const char* base = nullptr;
  int64_t stride = 0, tail = 0;
  void init(const Ten& x, int64_t b, int64_t c0, int nc, int L) {
    base = nullptr;
    if (!x.p) return;
    const char* p = (const char*)((const T*)x.p + b * x.sb + c0 * x.sx);
    if (x.sx == 1) {                          // step t: one row of nc channels
      base = p, stride = x.st * sizeof(T), tail = (nc - 1) * sizeof(T);
    } else if (x.st == 1 && x.sx == L) {      // the block is nc * L contiguous elements
      base = p, stride = W * sizeof(T), tail = 0;
    } else {
      prefetch<T>(x, b, c0, nc, L);
    }
  }
  void step(int t) const {
    if (!base) return;
    __builtin_prefetch(base + t * stride);
    if (tail) __builtin_prefetch(base + t * stride + tail);
  }
};

// B or C of batch element b as rows dst[t * NS + n] (zeros for n >= N): blocks of W states.
template <class T>
void gather_state_rows(const Ten& x, int64_t b, int N, int NS, int L, bool rev, float* dst, float* rows) {
  for (int n0 = 0; n0 < NS; n0 += W)
    gather<T>(x, b, n0, std::max(0, std::min(W, N - n0)), L, rev, dst + n0, rows, NS);
}

}  // namespace

// ---- the argument block (mirrored by ScanArgs in mamba_cpu.py) --------------------------------

extern "C" {
struct ScanArgs {
  int64_t batch, dim, len, nstate;
  int32_t bf16, nthreads, softplus, reverse;  // bf16: every Ten holds bfloat16, else float32
  Ten u, delta, z, B, C, out;                 // z.p may be null
  const float *A, *D, *bias;                  // (dim, nstate), (dim,), (dim,); D, bias may be null
  float* last;                                // (batch, dim, nstate) float32, or null
  Ten dout, du, ddelta, dz, dB, dC;           // backward only
  const float* dlast;                         // (batch, dim, nstate) or null
  float *dA, *dD, *dbias;                     // added to; dD / dbias null when D / bias are
  // Low-rank delta (Mamba's dt_proj fused): if delta_weight is set, delta is (batch, rank, L)
  // and the scan's delta is delta_weight (dim, rank) @ delta; ddelta is then (batch, rank, L)
  // and ddelta_weight (dim, rank) is added to.
  int64_t rank;
  const float* delta_weight;
  float* ddelta_weight;
};

struct ConvArgs {             // mirrored by ConvArgs in mamba_cpu.py
  int64_t batch, dim, len, width;
  int32_t bf16, nthreads, silu, reverse;
  Ten x, out;                 // (batch, dim, L)
  const float *weight, *bias; // (dim, width), (dim,) or null
  Ten dout, dx;               // backward only
  float *dweight, *dbias;     // added to; dbias null when bias is
};
}

namespace {

struct Work {                 // per-thread buffers
  // per step of a block: u, dt, dt * u, y, z, sigmoid(z); backward also dy (the gradient of y
  // before the gate), dout, du, ddt, softplus'(x)
  std::vector<vf> u, dt, dtu, y, z, sz, dy, dout, du, ddt, dsp;
  std::vector<vf> h, decay;   // backward: states and decays of a block, L x NS vectors
  std::vector<float> Bt, Ct;  // rows t of NS values
  std::vector<float> Rt;      // rows t of the low-rank delta (RS = rank padded to 16 values)
  std::vector<vf> dRt;        // backward: its gradient, rows t of rank vectors, summed over lanes at the end
  std::vector<float> rows;    // W x padded(L): gather / scatter staging
  std::vector<vf> dBt, dCt;   // rows t of NS / W vectors, lanes in reduction order
  std::vector<float> dA, dD, dbias, dW;
  int64_t b_rows = -1;        // batch element whose B, C rows are loaded
  Work(const ScanArgs& a, int NS, bool backward) {
    const size_t L = a.len;
    for (auto* v : {&u, &dt, &dtu, &y, &z, &sz}) v->resize(L);
    Bt.resize(L * NS), Ct.resize(L * NS), rows.resize(W * padded(int(L)));
    if (a.delta_weight) Rt.resize(L * padded(int(a.rank)));
    if (backward) {
      if (a.delta_weight) dRt.resize(L * a.rank), dW.assign(a.dim * a.rank, 0.f);
      for (auto* v : {&dy, &dout, &du, &ddt, &dsp}) v->resize(L);
      h.resize(L * NS), decay.resize(L * NS), dBt.resize(L * NS / W), dCt.resize(L * NS / W);
      dA.assign(a.dim * a.nstate, 0.f), dD.assign(a.dim, 0.f), dbias.assign(a.dim, 0.f);
    }
  }
};

inline float* fl(std::vector<vf>& v) { return reinterpret_cast<float*>(v.data()); }

// Below this much work (state or channel-tap updates: about 0.3 ms) a call runs on the calling
// thread: waking a second thread costs more than it saves, and on a busy machine a parallel
// region can wait a whole time slice for a thread that is not running (batch-1 inference).
constexpr int64_t MIN_PARALLEL_WORK = int64_t(1) << 20;

// Run item(i, work) for i in [0, n) on nthreads threads (this one included), items taken in
// order from a shared counter; returns the per-thread work buffers for the reductions.
// work_per_item: the size of one item, for the threshold above.
template <class MakeWork, class Item>
auto run_items(int64_t n, int64_t work_per_item, int nthreads, MakeWork make, Item item) {
  if (n * work_per_item < MIN_PARALLEL_WORK) nthreads = 1;
  nthreads = int(std::max<int64_t>(1, std::min<int64_t>(nthreads, n)));
  std::vector<decltype(make())> works;
  works.reserve(nthreads);
  for (int i = 0; i < nthreads; ++i) works.push_back(make());
  std::atomic<int64_t> next{0};
  std::exception_ptr error;
  std::atomic<bool> failed{false};
  auto body = [&](int k) {
    try {
      for (int64_t i; (i = next.fetch_add(1)) < n && !failed;) item(i, works[k]);
    } catch (...) {
      if (!failed.exchange(true)) error = std::current_exception();
    }
  };
#if defined(_OPENMP)
  // torch's own OpenMP runtime (libgomp.so.1 is loaded already): its idle threads, which spin
  // for a while after each torch op, do the work instead of competing with new threads
#pragma omp parallel num_threads(nthreads)
  body(omp_get_thread_num());
#else
  std::vector<std::thread> threads;
  for (int k = 1; k < nthreads; ++k) threads.emplace_back(body, k);
  body(0);
  for (auto& t : threads) t.join();
#endif
  if (error) std::rethrow_exception(error);
  return works;
}

template <int NS>
struct Scan {
  static_assert(NS % W == 0, "nstate is padded to a multiple of 16");

  static vf lanes_strided(const float* p, int64_t stride, int64_t c0, int nc) {
    vf v = {};
    if (p)
      for (int j = 0; j < nc; ++j) v[j] = p[(c0 + j) * stride];
    return v;
  }
  static vf lanes(const float* p, int64_t c0, int nc) { return lanes_strided(p, 1, c0, nc); }

  // A block's inputs: u, dt = softplus(delta + bias) (or without softplus), dt * u, z and
  // sigmoid(z); softplus' too for the backward; B and C (and low-rank delta) rows of b unless
  // loaded already.
  template <class T>
  static void load_block(const ScanArgs& a, int64_t b, int64_t c0, int nc, Work& w, bool backward) {
    const int L = int(a.len), R = int(a.rank), RS = padded(R);
    if (w.b_rows != b) {
      gather_state_rows<T>(a.B, b, int(a.nstate), NS, L, a.reverse, w.Bt.data(), w.rows.data());
      gather_state_rows<T>(a.C, b, int(a.nstate), NS, L, a.reverse, w.Ct.data(), w.rows.data());
      if (a.delta_weight) gather_state_rows<T>(a.delta, b, R, RS, L, a.reverse, w.Rt.data(), w.rows.data());
      w.b_rows = b;
    }
    gather<T>(a.u, b, c0, nc, L, a.reverse, fl(w.u), w.rows.data());
    if (a.delta_weight) {
      vf Wr[MAX_RANK];
      for (int r = 0; r < R; ++r) Wr[r] = lanes_strided(a.delta_weight + r, R, c0, nc);
      for (int t = 0; t < L; ++t) {
        vf d = {};
        for (int r = 0; r < R; ++r) d += Wr[r] * w.Rt[t * RS + r];
        w.dt[t] = d;
      }
    } else {
      gather<T>(a.delta, b, c0, nc, L, a.reverse, fl(w.dt), w.rows.data());
    }
    const vf bias = lanes(a.bias, c0, nc);
    for (int t = 0; t < L; ++t) {
      const vf x = w.dt[t] + bias;
      if (a.softplus) {
        w.dt[t] = softplus(x, backward ? &w.dsp[t] : nullptr);
      } else {
        w.dt[t] = x;
        if (backward) w.dsp[t] = splat(1.f);
      }
      w.dtu[t] = w.dt[t] * w.u[t];
    }
    if (a.z.p) {
      gather<T>(a.z, b, c0, nc, L, a.reverse, fl(w.z), w.rows.data());
      for (int t = 0; t < L; ++t) w.sz[t] = sigmoid(w.z[t]);
    }
  }

  static void load_A(const ScanArgs& a, int64_t c0, int nc, vf* A, vf* A2) {
    for (int n = 0; n < NS; ++n) A[n] = A2[n] = vf{};
    for (int j = 0; j < nc; ++j)
      for (int n = 0; n < a.nstate; ++n) {
        A[n][j] = a.A[(c0 + j) * a.nstate + n];
        A2[n][j] = A[n][j] * LOG2E;
      }
  }

  template <class T>
  static void forward_item(const ScanArgs& a, int64_t item, Work& w) {
    const int64_t nblocks = (a.dim + W - 1) / W, b = item / nblocks, c0 = (item % nblocks) * W;
    const int nc = int(std::min<int64_t>(W, a.dim - c0)), L = int(a.len);
    Ahead<T> ahead[3];
    if (item + 1 < a.batch * nblocks) {
      const int64_t b1 = (item + 1) / nblocks, c1 = ((item + 1) % nblocks) * W;
      const int nc1 = int(std::min<int64_t>(W, a.dim - c1));
      ahead[0].init(a.u, b1, c1, nc1, L), ahead[1].init(a.z, b1, c1, nc1, L);
      if (!a.delta_weight) ahead[2].init(a.delta, b1, c1, nc1, L);
    }
    load_block<T>(a, b, c0, nc, w, false);
    vf A[NS], A2[NS], h[NS];
    load_A(a, c0, nc, A, A2);
    for (int n = 0; n < NS; ++n) h[n] = vf{};
    for (int t = 0; t < L; ++t) {
      for (const auto& p : ahead) p.step(t);
      const vf dt = w.dt[t], dtu = w.dtu[t];
      const float *Bn = &w.Bt[t * NS], *Cn = &w.Ct[t * NS];
      vf acc[2] = {};
#pragma GCC unroll 64
      for (int n = 0; n < NS; ++n) {
        h[n] = exp2v(dt * A2[n]) * h[n] + dtu * Bn[n];
        acc[n % 2] += h[n] * Cn[n];
      }
      w.y[t] = acc[0] + acc[1];
    }
    const vf D = lanes(a.D, c0, nc);
    for (int t = 0; t < L; ++t) {
      vf y = w.y[t] + D * w.u[t];
      if (a.z.p) y *= w.z[t] * w.sz[t];
      w.y[t] = y;
    }
    scatter<T>(a.out, b, c0, nc, L, a.reverse, fl(w.y), w.rows.data());
    if (a.last)
      for (int j = 0; j < nc; ++j)
        for (int n = 0; n < a.nstate; ++n) a.last[(b * a.dim + c0 + j) * a.nstate + n] = h[n][j];
  }

  template <class T>
  static void backward_item(const ScanArgs& a, int64_t b, Work& w, const int* order) {
    const int L = int(a.len);
    constexpr int G = NS / W;                       // reduction groups per row
    std::fill(w.dBt.begin(), w.dBt.end(), vf{});
    std::fill(w.dCt.begin(), w.dCt.end(), vf{});
    std::fill(w.dRt.begin(), w.dRt.end(), vf{});
    const int R = int(a.rank), RS = padded(R);
    for (int64_t c0 = 0; c0 < a.dim; c0 += W) {
      const int nc = int(std::min<int64_t>(W, a.dim - c0));
      // the next block of this thread is most likely the next one of b (or b + 1's first)
      const int64_t b1 = c0 + W < a.dim ? b : b + 1, c1 = c0 + W < a.dim ? c0 + W : 0;
      Ahead<T> ahead[4];
      if (b1 < a.batch) {
        const int nc1 = int(std::min<int64_t>(W, a.dim - c1));
        ahead[0].init(a.u, b1, c1, nc1, L), ahead[1].init(a.z, b1, c1, nc1, L);
        ahead[2].init(a.dout, b1, c1, nc1, L);
        if (!a.delta_weight) ahead[3].init(a.delta, b1, c1, nc1, L);
      }
      load_block<T>(a, b, c0, nc, w, true);
      gather<T>(a.dout, b, c0, nc, L, a.reverse, fl(w.dout), w.rows.data());
      for (int t = 0; t < L; ++t) w.dy[t] = a.z.p ? w.dout[t] * w.z[t] * w.sz[t] : w.dout[t];
      vf A[NS], A2[NS], h[NS], P[NS];
      load_A(a, c0, nc, A, A2);

      // forward again, keeping states and decays; y (for dz) and dC on the way
      for (int n = 0; n < NS; ++n) h[n] = vf{};
      for (int t = 0; t < L; ++t) {
        for (const auto& p : ahead) p.step(t);
        const vf dt = w.dt[t], dtu = w.dtu[t], dy = w.dy[t];
        const float *Bn = &w.Bt[t * NS], *Cn = &w.Ct[t * NS];
        vf* hs = &w.h[t * NS];
        vf* ds = &w.decay[t * NS];
        vf acc[2] = {};
#pragma GCC unroll 64
        for (int n = 0; n < NS; ++n) {
          const vf decay = exp2v(dt * A2[n]);
          h[n] = decay * h[n] + dtu * Bn[n];
          ds[n] = decay;
          hs[n] = h[n];
          acc[n % 2] += h[n] * Cn[n];
          P[n] = dy * h[n];
        }
        w.y[t] = acc[0] + acc[1];
        for (int g = 0; g < G; ++g) w.dCt[t * G + g] += reduce16(P + g * W);
      }

      // reverse scan: Gs = dL/dh_t, Gs_t = C_t dy_t + decay_{t+1} Gs_{t+1} (+ dlast at the end)
      vf Gs[NS], dAacc[NS];
      for (int n = 0; n < NS; ++n) Gs[n] = dAacc[n] = vf{};
      if (a.dlast)
        for (int j = 0; j < nc; ++j)
          for (int n = 0; n < a.nstate; ++n) Gs[n][j] = a.dlast[(b * a.dim + c0 + j) * a.nstate + n];
      for (int t = L - 1; t >= 0; --t) {
        const vf dy = w.dy[t], dt = w.dt[t], dtu = w.dtu[t];
        const float *Bn = &w.Bt[t * NS], *Cn = &w.Ct[t * NS];
        vf gb[2] = {};
#pragma GCC unroll 64
        for (int n = 0; n < NS; ++n) {
          Gs[n] += dy * Cn[n];
          gb[n % 2] += Gs[n] * Bn[n];
          P[n] = Gs[n] * dtu;
        }
        for (int g = 0; g < G; ++g) w.dBt[t * G + g] += reduce16(P + g * W);
        const vf GB = gb[0] + gb[1];
        vf ddt[2] = {w.u[t] * GB, {}};
        w.du[t] = dt * GB;
        if (t > 0) {       // through the decay: Q = dL/d(dt A) = Gs_t h_{t-1} decay_t
          const vf *hp = &w.h[(t - 1) * NS], *ds = &w.decay[t * NS];
#pragma GCC unroll 64
          for (int n = 0; n < NS; ++n) {
            const vf pd = Gs[n] * ds[n], q = pd * hp[n];
            ddt[n % 2] += q * A[n];
            dAacc[n] += q * dt;
            Gs[n] = pd;
          }
        }
        w.ddt[t] = ddt[0] + ddt[1];
      }

      // the block's input gradients, and its shares of dA, dD, dbias
      const vf D = lanes(a.D, c0, nc);
      vf dD = {}, dbias = {};
      for (int t = 0; t < L; ++t) {
        if (a.z.p) {
          const vf z = w.z[t], sz = w.sz[t];
          w.z[t] = w.dout[t] * (w.y[t] + D * w.u[t]) * sz * (1.f + z * (1.f - sz));   // dz
        }
        dD += w.dy[t] * w.u[t];
        w.du[t] += w.dy[t] * D;
        const vf ddt = w.ddt[t] * w.dsp[t];
        dbias += ddt;
        w.ddt[t] = ddt;
      }
      scatter<T>(a.du, b, c0, nc, L, a.reverse, fl(w.du), w.rows.data());
      if (a.delta_weight) {     // ddelta_low[r] = sum_c W[c, r] ddelta[c]; dW[c, r] = sum_t ddelta[c] delta_low[r]
        vf Wr[MAX_RANK], dWr[MAX_RANK];
        for (int r = 0; r < R; ++r) Wr[r] = lanes_strided(a.delta_weight + r, R, c0, nc), dWr[r] = vf{};
        for (int t = 0; t < L; ++t)
          for (int r = 0; r < R; ++r) {
            w.dRt[t * R + r] += w.ddt[t] * Wr[r];
            dWr[r] += w.ddt[t] * w.Rt[t * RS + r];
          }
        for (int j = 0; j < nc; ++j)
          for (int r = 0; r < R; ++r) w.dW[(c0 + j) * R + r] += dWr[r][j];
      } else {
        scatter<T>(a.ddelta, b, c0, nc, L, a.reverse, fl(w.ddt), w.rows.data());
      }
      if (a.z.p) scatter<T>(a.dz, b, c0, nc, L, a.reverse, fl(w.z), w.rows.data());
      for (int j = 0; j < nc; ++j) {
        w.dD[c0 + j] += dD[j];
        w.dbias[c0 + j] += dbias[j];
        for (int n = 0; n < a.nstate; ++n) w.dA[(c0 + j) * a.nstate + n] += dAacc[n][j];
      }
    }
    // dB, dC of b: slot g * W + j of a row holds state g * W + order[j]
    for (int t = 0; t < L; ++t) {
      const int64_t tt = a.reverse ? L - 1 - t : t;
      for (int r = 0; r < R; ++r) {
        const vf v = w.dRt[t * R + r];
        float sum = 0.f;
        for (int j = 0; j < W; ++j) sum += v[j];
        st((T*)a.ddelta.p + b * a.ddelta.sb + r * a.ddelta.sx + tt * a.ddelta.st, sum);
      }
      for (int g = 0; g < G; ++g)
        for (int j = 0; j < W; ++j) {
          const int n = g * W + order[j];
          if (n >= a.nstate) continue;
          st((T*)a.dB.p + b * a.dB.sb + n * a.dB.sx + tt * a.dB.st, w.dBt[t * G + g][j]);
          st((T*)a.dC.p + b * a.dC.sb + n * a.dC.sx + tt * a.dC.st, w.dCt[t * G + g][j]);
        }
    }
  }

  template <class T>
  static void forward(const ScanArgs& a) {
    const int64_t items = a.batch * ((a.dim + W - 1) / W);
    run_items(items, a.len * NS * W, a.nthreads, [&] { return Work(a, NS, false); },
              [&](int64_t i, Work& w) { forward_item<T>(a, i, w); });
  }

  template <class T>
  static void backward(const ScanArgs& a) {
    int order[W];
    reduction_order(order);
    auto works = run_items(a.batch, a.dim * a.len * NS, a.nthreads, [&] { return Work(a, NS, true); },
                           [&](int64_t b, Work& w) { backward_item<T>(a, b, w, order); });
    for (const Work& w : works) {
      for (int64_t i = 0; i < a.dim * a.nstate; ++i) a.dA[i] += w.dA[i];
      if (a.delta_weight)
        for (int64_t i = 0; i < a.dim * a.rank; ++i) a.ddelta_weight[i] += w.dW[i];
      for (int64_t c = 0; c < a.dim; ++c) {
        if (a.dD) a.dD[c] += w.dD[c];
        if (a.dbias) a.dbias[c] += w.dbias[c];
      }
    }
  }
};

// ---- causal depthwise conv1d (+ SiLU) ------------------------------------------------------
// out[c, t] = act(bias[c] + sum_k weight[c, k] x[c, t - (width - 1) + k]), zeros before the
// start; in reverse the time axis is flipped (the conv looks ahead instead of back).

struct ConvWork {
  std::vector<vf> x, pre, g;
  std::vector<float> rows, dw, db;
  ConvWork(const ConvArgs& a, bool backward) : x(a.len), pre(a.len), rows(W * padded(int(a.len))) {
    if (backward) g.resize(a.len), dw.assign(a.dim * a.width, 0.f), db.assign(a.dim, 0.f);
  }
};

struct Conv {
  // pre-activations of a block from its gathered input
  static void preact(const ConvArgs& a, int64_t c0, int nc, ConvWork& w, vf* wk) {
    const int L = int(a.len), K = int(a.width);
    vf bias = {};
    for (int j = 0; j < nc; ++j) {
      if (a.bias) bias[j] = a.bias[c0 + j];
      for (int k = 0; k < K; ++k) wk[k][j] = a.weight[(c0 + j) * K + k];
    }
    for (int t = 0; t < L; ++t) {
      vf acc = bias;
      for (int k = std::max(0, K - 1 - t); k < K; ++k) acc += wk[k] * w.x[t - (K - 1) + k];
      w.pre[t] = acc;
    }
  }

  // the next item's rows of x (and dout), asked for while this item computes
  template <class T>
  static void ahead(const ConvArgs& a, int64_t item, bool backward, Ahead<T>* out) {
    const int64_t nblocks = (a.dim + W - 1) / W;
    if (++item >= a.batch * nblocks) return;
    const int64_t b = item / nblocks, c0 = (item % nblocks) * W;
    const int nc = int(std::min<int64_t>(W, a.dim - c0));
    out[0].init(a.x, b, c0, nc, int(a.len));
    if (backward) out[1].init(a.dout, b, c0, nc, int(a.len));
  }

  template <class T>
  static void forward_item(const ConvArgs& a, int64_t item, ConvWork& w) {
    const int64_t nblocks = (a.dim + W - 1) / W, b = item / nblocks, c0 = (item % nblocks) * W;
    const int nc = int(std::min<int64_t>(W, a.dim - c0)), L = int(a.len);
    Ahead<T> next[1];
    ahead<T>(a, item, false, next);
    gather<T>(a.x, b, c0, nc, L, a.reverse, fl(w.x), w.rows.data());
    vf wk[MAX_WIDTH] = {};
    preact(a, c0, nc, w, wk);
    for (int t = 0; t < L; ++t) {
      next[0].step(t);
      if (a.silu) w.pre[t] *= sigmoid(w.pre[t]);
    }
    scatter<T>(a.out, b, c0, nc, L, a.reverse, fl(w.pre), w.rows.data());
  }

  template <class T>
  static void backward_item(const ConvArgs& a, int64_t item, ConvWork& w) {
    const int64_t nblocks = (a.dim + W - 1) / W, b = item / nblocks, c0 = (item % nblocks) * W;
    const int nc = int(std::min<int64_t>(W, a.dim - c0)), L = int(a.len), K = int(a.width);
    Ahead<T> next[2];
    ahead<T>(a, item, true, next);
    gather<T>(a.x, b, c0, nc, L, a.reverse, fl(w.x), w.rows.data());
    gather<T>(a.dout, b, c0, nc, L, a.reverse, fl(w.g), w.rows.data());
    vf wk[MAX_WIDTH] = {}, dwk[MAX_WIDTH] = {}, db = {};
    preact(a, c0, nc, w, wk);
    for (int t = 0; t < L; ++t) {               // g: the gradient of the pre-activation
      next[0].step(t), next[1].step(t);
      if (a.silu) {
        const vf p = w.pre[t], sp = sigmoid(p);
        w.g[t] *= sp * (1.f + p * (1.f - sp));
      }
      db += w.g[t];
      for (int k = std::max(0, K - 1 - t); k < K; ++k) dwk[k] += w.g[t] * w.x[t - (K - 1) + k];
    }
    for (int s = 0; s < L; ++s) {              // dx_s = sum_k weight_k g_{s + width - 1 - k}
      vf acc = {};
      for (int k = 0; k < K; ++k) {
        const int t = s + K - 1 - k;
        if (t < L) acc += wk[k] * w.g[t];
      }
      w.pre[s] = acc;
    }
    scatter<T>(a.dx, b, c0, nc, L, a.reverse, fl(w.pre), w.rows.data());
    for (int j = 0; j < nc; ++j) {
      w.db[c0 + j] += db[j];
      for (int k = 0; k < K; ++k) w.dw[(c0 + j) * K + k] += dwk[k][j];
    }
  }

  template <class T>
  static void forward(const ConvArgs& a) {
    run_items(a.batch * ((a.dim + W - 1) / W), a.len * W * a.width, a.nthreads, [&] { return ConvWork(a, false); },
              [&](int64_t i, ConvWork& w) { forward_item<T>(a, i, w); });
  }

  template <class T>
  static void backward(const ConvArgs& a) {
    auto works = run_items(a.batch * ((a.dim + W - 1) / W), a.len * W * a.width, a.nthreads,
                           [&] { return ConvWork(a, true); },
                           [&](int64_t i, ConvWork& w) { backward_item<T>(a, i, w); });
    for (const ConvWork& w : works) {
      for (int64_t i = 0; i < a.dim * a.width; ++i) a.dweight[i] += w.dw[i];
      if (a.dbias)
        for (int64_t c = 0; c < a.dim; ++c) a.dbias[c] += w.db[c];
    }
  }
};

template <bool Backward, int NS>
void run_typed(const ScanArgs& a) {
  if (a.bf16)
    Backward ? Scan<NS>::template backward<uint16_t>(a) : Scan<NS>::template forward<uint16_t>(a);
  else
    Backward ? Scan<NS>::template backward<float>(a) : Scan<NS>::template forward<float>(a);
}

template <bool Backward>
int dispatch(const ScanArgs* a) {
  if (a->len < 1 || a->batch < 1 || a->dim < 1 || a->nstate < 1) return 0;
  if (a->delta_weight && (a->rank < 1 || a->rank > MAX_RANK)) return 5;
  try {
    switch ((a->nstate + W - 1) / W) {           // nstate padded with zero states to NS
      case 1: run_typed<Backward, 16>(*a); return 0;
      case 2: run_typed<Backward, 32>(*a); return 0;
      default: return 2;                         // nstate > mamba_cpu_max_nstate()
    }
  } catch (const std::bad_alloc&) {
    return 3;
  } catch (...) {
    return 4;
  }
}

}  // namespace

template <bool Backward>
int dispatch_conv(const ConvArgs* a) {
  if (a->len < 1 || a->batch < 1 || a->dim < 1) return 0;
  if (a->width < 1 || a->width > MAX_WIDTH) return 6;
  try {
    if (a->bf16)
      Backward ? Conv::backward<uint16_t>(*a) : Conv::forward<uint16_t>(*a);
    else
      Backward ? Conv::backward<float>(*a) : Conv::forward<float>(*a);
    return 0;
  } catch (const std::bad_alloc&) {
    return 3;
  } catch (...) {
    return 4;
  }
}

extern "C" {
int mamba_cpu_abi() { return 3; }                  // bump with any change to ScanArgs
int mamba_cpu_max_nstate() { return 2 * W; }
int mamba_cpu_max_rank() { return MAX_RANK; }
int mamba_cpu_scan_forward(const ScanArgs* a) { return dispatch<false>(a); }
int mamba_cpu_scan_backward(const ScanArgs* a) { return dispatch<true>(a); }
int mamba_cpu_max_width() { return MAX_WIDTH; }
int mamba_cpu_conv_forward(const ConvArgs* a) { return dispatch_conv<false>(a); }
int mamba_cpu_conv_backward(const ConvArgs* a) { return dispatch_conv<true>(a); }
}
